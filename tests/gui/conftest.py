"""Fixtures of the window's tests."""

from __future__ import annotations

import pytest

from app.gui import theme

START_TIMEOUT_MS = 10_000  # issue 14: the window opens "within seconds", whatever the state


@pytest.fixture
def start(qtbot, home):
    """start() -> the window `corral gui` would show on `home` (app.gui.app.create_window, what
    `corral gui` runs), once its start-up is done; closed after the test."""
    windows = []

    def run():
        from app.gui.app import create_window

        _app, window = create_window([])
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        qtbot.waitUntil(lambda: window.is_ready, timeout=START_TIMEOUT_MS)
        return window

    yield run
    for w in windows:
        w.close()
    theme.ensure("light")
