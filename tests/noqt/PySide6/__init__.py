# Put first on PYTHONPATH by `make test`'s core step: importing PySide6 fails there, which proves
# app/core (and the CLI commands its tests run) works where Qt cannot be imported at all.
raise ImportError("PySide6 is blocked here: the core's tests run without Qt (tests/noqt)")
