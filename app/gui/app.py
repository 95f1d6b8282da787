"""Start the Qt application and show the main window."""

from __future__ import annotations

import sys
import time

# Taken as early as this module is imported (right after the CLI parsed its arguments), so
# `--quit-after-show` reports the time from process start-up to a shown window.
_T0 = time.perf_counter()


def run_app(argv: list[str] | None = None, *, quit_after_show: bool = False) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("Corral")
    app.setOrganizationName("Corral")
    window = MainWindow()
    window.show()
    if quit_after_show:
        def report() -> None:
            print(f"shown in {(time.perf_counter() - _T0) * 1000:.0f} ms", flush=True)
            app.quit()
        QTimer.singleShot(0, report)
    return app.exec()
