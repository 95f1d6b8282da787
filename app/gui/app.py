"""Start the Qt application and show the main window."""

from __future__ import annotations

import sys
import time

# Taken as early as this module is imported (right after the CLI parsed its arguments), so
# `--quit-after-show` reports the time from process start-up to a shown window.
_T0 = time.perf_counter()


def create_window(argv: list[str] | None = None):
    """The QApplication (made if needed), themed from the settings, and the main window (not
    shown yet). `run_app` and tools/screenshots.py start the app the same way."""
    from PySide6.QtWidgets import QApplication

    from app.gui import theme
    from app.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Corral")
    app.setOrganizationName("Corral")
    app.setApplicationDisplayName("Corral")
    app.setDesktopFileName("corral")  # Wayland matches the window to corral.desktop by this
    from PySide6.QtGui import QIcon

    from app.core.resources import resource_path

    icon = QIcon()
    for size in (16, 24, 32, 48, 64, 128, 256):
        icon.addFile(str(resource_path("icons", f"corral-{size}.png")))
    app.setWindowIcon(icon)
    settings, error = start_settings()
    theme.ensure(settings.theme)
    return app, MainWindow(settings, settings_error=error)


def start_settings():
    """(the settings to start with, the message for the window or None): the window always
    starts, with what could be kept of the saved settings, else the defaults, and says so."""
    from app.core.settings import Settings, SettingsError, load_settings, settings_path

    try:
        return load_settings(), None
    except SettingsError as exc:  # the file was set aside (or left as it is) and this says so
        return exc.settings, str(exc)
    except (OSError, ValueError) as exc:  # not foreseen by the reader: still never fatal
        return Settings(), (f"{settings_path()} cannot be read ({exc}); Corral uses the default "
                            "settings for now")


def run_app(argv: list[str] | None = None, *, quit_after_show: bool = False) -> int:
    from PySide6.QtCore import QTimer

    app, window = create_window(argv)
    window.show()
    if quit_after_show:
        # "shown in": the window is on screen (sidebar, status bar, the last screen's frame);
        # "ready in": the chat screen is built too (it is built right after the first frame).
        def finish() -> None:
            print(f"ready in {(time.perf_counter() - _T0) * 1000:.0f} ms", flush=True)
            window.close()
            app.quit()

        def report() -> None:
            print(f"shown in {(time.perf_counter() - _T0) * 1000:.0f} ms", flush=True)
            if window.is_ready:
                finish()
            else:
                window.ready.connect(finish)
        QTimer.singleShot(0, report)
    return app.exec()
