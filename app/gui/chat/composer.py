"""The message box under the chat: Enter sends, Shift+Enter starts a new line, Esc stops (or
leaves editing). A view of the chat session.

A draft that cannot fit the model's context gets a warning before it is sent (`warning`, a
banner the screen floats just above the box: showing it moves nothing), with its token count
and what will happen; an empty box never has one. The draft reaches the session at most every
DRAFT_MS, so a 20,000-line paste costs one copy of its text, not one per keystroke; the box
itself (a QPlainTextEdit) stays responsive with such a text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton,
                               QSizePolicy, QToolButton, QVBoxLayout, QWidget)

from app.gui.chat.style import muted
from app.gui.chat.toolbar import Banner

if TYPE_CHECKING:
    from app.gui.chat.next_prompt import ContextView
    from app.gui.chat.session import ChatSession

MAX_LINES = 8
DRAFT_MS = 80


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

    def __init__(self, session: "ChatSession", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setObjectName("composer")
        self.busy = False
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
        self.warning = Banner(closable=False)
        self.warning.setObjectName("draftWarning")
        self._draft_timer = QTimer(self, singleShot=True, interval=DRAFT_MS)
        self._draft_timer.timeout.connect(lambda: session.set_draft(self.text()))
        self._fit()
        session.busyChanged.connect(self.set_busy)
        session.editing.connect(self._editing)
        session.draftSent.connect(self.sent)
        session.draftRefused.connect(lambda why: self.warning.show_message(
            f"Not sent. {why}", "warning"))
        session.contextShown.connect(self._context)

    @property
    def editing(self) -> int | None:
        """The message being edited (sending replaces it), or None."""
        return self.session.replies.editing_id

    def text(self) -> str:
        return self.edit.toPlainText()

    def set_text(self, text: str) -> None:
        self.edit.setPlainText(text)
        self.edit.moveCursor(self.edit.textCursor().MoveOperation.End)

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.button.setText("Stop" if busy else "Send")
        self.button.setToolTip("Stop the reply (Esc)" if busy else "Send (Enter)")

    def _editing(self, message_id: int | None, text: str) -> None:
        if message_id is not None:
            self.edit_note.show()
            self.set_text(text)
            self.edit.setFocus()
        elif not self.edit_note.isHidden():
            self.edit_note.hide()
            self.edit.clear()

    def cancel_edit(self) -> None:
        self.session.replies.cancel_edit()

    def focus(self) -> None:
        self.edit.setFocus()

    def _submit(self) -> None:
        text = self.text()
        if self.busy or not text.strip():
            return
        self._draft_timer.stop()
        self.session.send(text)

    def _escape(self) -> None:
        if self.busy:
            self.session.stop()
        else:
            self.cancel_edit()

    def _button(self) -> None:
        if self.busy:
            self.session.stop()
        else:
            self._submit()

    def sent(self) -> None:
        """The text went out: clear the box and leave edit mode."""
        self.edit_note.hide()
        self.edit.clear()
        self.warning.hide()

    def _changed(self) -> None:
        self._fit()
        if self.edit.document().isEmpty():  # nothing to warn about: at once, not after a check
            self.warning.hide()
        self._draft_timer.start()

    def _context(self, view: "ContextView") -> None:
        if view.warning and not self.edit.document().isEmpty():
            self.warning.show_message(view.warning, "warning")
        else:
            self.warning.hide()

    def _fit(self) -> None:
        lines = min(MAX_LINES, max(1, self.edit.document().lineCount()))
        margins = self.edit.contentsMargins()
        height = (lines * self.edit.fontMetrics().lineSpacing()
                  + 2 * int(self.edit.document().documentMargin())
                  + margins.top() + margins.bottom() + 4)
        if height != self.edit.height():
            self.edit.setFixedHeight(height)
