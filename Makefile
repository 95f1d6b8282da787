# Two commands do all set-up on a fresh machine:
#   make run   - create .venv if missing, install Corral into it, open the window (as root with
#                apt, it first installs the system libraries the window needs that are missing)
#   make test  - the same set-up, then the whole test suite and the core/GUI import contract
# The first install compiles llama-cpp-python from source (~8 minutes on 2 cores); pip caches
# the wheel, so later installs take seconds.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.corral-installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

run: $(STAMP) system-deps
	$(VENV)/bin/corral $(ARGS)

# The system libraries Qt's window needs that are missing here (Debian/Ubuntu names): installed
# when this runs as root with apt; otherwise `corral` names them with the command to run.
.PHONY: system-deps
system-deps: $(STAMP)
	@pkgs="$$($(PY) -m app.gui.platform_check --debian-packages)"; \
	if [ -n "$$pkgs" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing the system libraries the window needs: $$pkgs"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y --no-install-recommends $$pkgs \
			|| { apt-get update && apt-get install -y --no-install-recommends $$pkgs; } \
			|| echo "Could not install $$pkgs; corral will say what is missing."; \
	fi

# tests/core runs where Qt cannot be imported (tests/noqt shadows PySide6, shiboken6 and superqt,
# in pytest and in every `corral` child it starts): proof that app/core needs no Qt. Then the CLI
# and window tests, with Qt, offscreen.
test: $(STAMP)
	cd $(CURDIR) && $(VENV)/bin/lint-imports
	PYTHONPATH=$(CURDIR)/tests/noqt $(PY) -m pytest -p no:pytest-qt -W ignore::pytest.PytestConfigWarning tests/core
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest tests/cli tests/gui

bench: $(STAMP)
	$(PY) bench/engine.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

.PHONY: screenshots
screenshots: $(STAMP)
	$(PY) tools/screenshots.py

# Installers (see installers/README.md). `make dist` builds the Linux ones here from .venv:
# the frozen app, a .deb, an AppDir and a portable .tar.gz, all in dist/. `make dist-check`
# then installs the .deb with dpkg, uses it, times its start-up and removes it (needs root).
.PHONY: dist dist-deps dist-check

dist-deps:
	bash installers/linux/build_deps.sh

dist: $(STAMP) dist-deps
	$(PY) -m pip install --quiet -r installers/requirements-build.txt
	PYTHON=$(PY) bash installers/build_linux.sh

dist-check: dist
	PYTHON=$(PY) python3 installers/check_deb.py
