"""Shared fixtures. Generated GGUF models are written once per session into a temporary folder."""

from __future__ import annotations

import os

# Before any QApplication exists (pytest-qt creates it lazily): tests run without a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from app.testing import models  # noqa: E402


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def make_model(models_dir: Path):
    """make_model(kind="tiny", folder=None, **options) -> Path, written into the session folder.

    The file name is `{name}.{type}.gguf`: give variants distinct names (or a folder) so they
    do not overwrite each other."""
    def make(kind: str = "tiny", folder: Path | None = None, **options) -> Path:
        return models.KINDS[kind](folder or models_dir, **options)
    return make


@pytest.fixture(scope="session")
def tiny_model(make_model) -> Path:
    return make_model("tiny")


@pytest.fixture(scope="session")
def small_model(make_model) -> Path:
    return make_model("small")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty Corral home (CORRAL_HOME) for one test. Test modules that need a home set
    up another way define their own `home`."""
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def open_window(qtbot, home):
    """open_window() -> a shown MainWindow on `home`, closed (and the theme reset) afterwards."""
    from app.core.settings import load_settings
    from app.gui import theme
    from app.gui.main_window import MainWindow

    windows = []

    def make():
        window = MainWindow(load_settings())
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for w in windows:
        w.close()
    theme.ensure("light")
