"""The message box under the chat: Enter sends, Shift+Enter starts a new line, Esc stops."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton,
                               QSizePolicy, QToolButton, QVBoxLayout, QWidget)

from app.gui.chat.style import muted

MAX_LINES = 8


class ComposerEdit(QPlainTextEdit):
    submitted = Signal()
    escaped = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key, mods = event.key(), event.modifiers()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
                mods & (Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.AltModifier)):
            self.submitted.emit()
            return
        if key == Qt.Key.Key_Escape:
            self.escaped.emit()
            return
        super().keyPressEvent(event)


class Composer(QFrame):
    """The text box and its Send / Stop button; an "editing" note when a message is re-sent."""

    submitted = Signal(str)
    stopRequested = Signal()
    editCancelled = Signal()
    draftChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("composer")
        self.busy = False
        self.editing: int | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 6, 16, 12)
        outer.setSpacing(4)
        self.edit_note = QWidget()
        note = QHBoxLayout(self.edit_note)
        note.setContentsMargins(4, 0, 4, 0)
        note.addWidget(muted(QLabel("Editing a message: sending replaces it and the replies "
                                    "after it")), 1)
        cancel = QToolButton(text="Cancel")
        cancel.setAutoRaise(True)
        cancel.clicked.connect(self.cancel_edit)
        note.addWidget(cancel)
        self.edit_note.hide()
        outer.addWidget(self.edit_note)
        row = QHBoxLayout()
        row.setSpacing(8)
        self.edit = ComposerEdit()
        self.edit.setPlaceholderText("Message the model…  (Enter sends, Shift+Enter new line)")
        self.edit.setTabChangesFocus(True)
        self.edit.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.edit.submitted.connect(self._submit)
        self.edit.escaped.connect(self._escape)
        self.edit.textChanged.connect(self._changed)
        row.addWidget(self.edit, 1)
        self.button = QPushButton("Send")
        self.button.setDefault(False)
        self.button.setAutoDefault(False)
        self.button.setMinimumWidth(84)
        self.button.clicked.connect(self._button)
        row.addWidget(self.button, 0, Qt.AlignmentFlag.AlignBottom)
        outer.addLayout(row)
        self._fit()

    def text(self) -> str:
        return self.edit.toPlainText()

    def set_text(self, text: str) -> None:
        self.edit.setPlainText(text)
        self.edit.moveCursor(self.edit.textCursor().MoveOperation.End)

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.button.setText("Stop" if busy else "Send")
        self.button.setToolTip("Stop the reply (Esc)" if busy else "Send (Enter)")

    def begin_edit(self, message_id: int, text: str) -> None:
        self.editing = message_id
        self.edit_note.show()
        self.set_text(text)
        self.edit.setFocus()

    def cancel_edit(self) -> None:
        if self.editing is not None:
            self.editing = None
            self.edit_note.hide()
            self.edit.clear()
            self.editCancelled.emit()

    def focus(self) -> None:
        self.edit.setFocus()

    def _submit(self) -> None:
        text = self.text()
        if self.busy or not text.strip():
            return
        self.submitted.emit(text)

    def _escape(self) -> None:
        if self.busy:
            self.stopRequested.emit()
        else:
            self.cancel_edit()

    def _button(self) -> None:
        if self.busy:
            self.stopRequested.emit()
        else:
            self._submit()

    def sent(self) -> None:
        """The text went out: clear the box and leave edit mode."""
        self.editing = None
        self.edit_note.hide()
        self.edit.clear()

    def _changed(self) -> None:
        self._fit()
        self.draftChanged.emit(self.text())

    def _fit(self) -> None:
        lines = min(MAX_LINES, max(1, self.edit.document().lineCount()))
        margins = self.edit.contentsMargins()
        height = (lines * self.edit.fontMetrics().lineSpacing()
                  + 2 * int(self.edit.document().documentMargin())
                  + margins.top() + margins.bottom() + 4)
        if height != self.edit.height():
            self.edit.setFixedHeight(height)
