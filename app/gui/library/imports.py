"""Imports in progress, one row each above the Library's tabs: the file, how much is copied, Cancel.

A copy (`Library.import_file`, core) runs on a thread of its own — a 5 GB file takes a minute
and must not hold one of the two pool threads the scans and searches use. It reports each
block through a queued signal; Cancel sets the copy's event, and the core removes what it
copied. When the application quits, running copies are cancelled and waited for (one block), so
no temporary file is left in the models folder.
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QProgressBar, QPushButton, QVBoxLayout, QWidget

from app.core.library import COPY, ImportCancelled
from app.core.memory_plan import format_bytes
from app.gui.widgets import label


class ImportRow(QFrame):
    def __init__(self, path: Path, mode: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.cancel_event = threading.Event()
        self.setProperty("card", True)
        self.setObjectName(f"import-{path.name}")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 8, 14, 8)
        lay.setSpacing(4)
        top = QHBoxLayout()
        verb = "Copying" if mode == COPY else "Moving" if mode == "move" else "Adding"
        top.addWidget(label(f"{verb} {path.name} into your library", role="cardtitle", wrap=True), 1)
        self.figures = label("", role="muted")
        top.addWidget(self.figures)
        self.cancel = QPushButton("Cancel")
        self.cancel.setObjectName("cancel-import-button")
        self.cancel.setProperty("danger", True)
        self.cancel.setCursor(Qt.CursorShape.PointingHandCursor)
        self.cancel.clicked.connect(self._cancel)
        top.addWidget(self.cancel)
        lay.addLayout(top)
        self.bar = QProgressBar()
        self.bar.setRange(0, 0)  # busy until the first block is copied
        self.bar.setTextVisible(False)
        lay.addWidget(self.bar)

    def set_progress(self, done: int, total: int) -> None:
        if total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(1000 * min(1.0, done / total)))
            self.figures.setText(f"{format_bytes(done)} of {format_bytes(total)} ({100 * done / total:.0f} %)")

    def _cancel(self) -> None:
        self.cancel_event.set()
        self.cancel.setEnabled(False)
        self.cancel.setText("Cancelling…")


class ImportsPanel(QWidget):
    """The rows of the imports running now; hidden when there are none."""

    imported = Signal(object)          # LocalModel
    failed = Signal(object, object)    # Path, the exception
    cancelled = Signal(object)         # Path
    _progress = Signal(object, int, int)   # row, bytes, size (from the copy's thread)
    _ended = Signal(object, object, object)  # row, model or None, exception or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(0, 0, 0, 0)
        self.lay.setSpacing(6)
        self.rows: list[ImportRow] = []
        self._threads: list[threading.Thread] = []
        self._progress.connect(lambda row, done, total: row.set_progress(done, total))
        self._ended.connect(self._end)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.stop_all)
        self.hide()

    def start(self, library, path: Path, mode: str) -> ImportRow:
        """Import `path` (copy, move or link) on a thread of its own, with a row to follow it."""
        row = ImportRow(path, mode)
        self.rows.append(row)
        self.lay.addWidget(row)
        self.show()

        def work() -> None:
            try:
                model = library.import_file(path, mode, cancel=row.cancel_event,
                                            progress=lambda done, total: self._progress.emit(row, done, total))
            except Exception as exc:  # said in the banner by the screen; the app goes on
                self._emit_end(row, None, exc)
                return
            self._emit_end(row, model, None)

        thread = threading.Thread(target=work, name=f"import {path.name}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return row

    def _emit_end(self, row: ImportRow, model, exc) -> None:
        try:
            self._ended.emit(row, model, exc)
        except RuntimeError:  # the panel was deleted (the window closed) meanwhile
            pass

    def _end(self, row: ImportRow, model, exc) -> None:
        if row in self.rows:
            self.rows.remove(row)
        row.setParent(None)
        row.deleteLater()
        self.setVisible(bool(self.rows))
        if isinstance(exc, ImportCancelled):
            self.cancelled.emit(row.path)
        elif exc is not None:
            self.failed.emit(row.path, exc)
        else:
            self.imported.emit(model)

    def stop_all(self, timeout: float = 10.0) -> None:
        """Cancel every running copy and wait for each to clean up (a block: well under a second)."""
        for row in self.rows:
            row.cancel_event.set()
        for thread in self._threads:
            thread.join(timeout)
