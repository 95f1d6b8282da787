"""Find in the conversation (Ctrl+F): a bar floating over the top of the conversation with the
text to find, the match count ("3 of 12"), previous / next and close. The searching itself is
the message list's (`MessageView.find`, over every message's text, not only those laid out);
this bar only drives it.

Keys while the field has the focus: Enter or F3 the next match, Shift+Enter or Shift+F3 the
previous one, Esc closes (and clears the highlight).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QLineEdit, QToolButton, QWidget

from app.gui.chat.style import muted

FIND_MS = 120  # a burst of keystrokes makes one search


class FindBar(QFrame):
    def __init__(self, view: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("findBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.view = view
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        lay.setSpacing(4)
        self.field = QLineEdit()
        self.field.setObjectName("findField")
        self.field.setPlaceholderText("Find in this conversation")
        self.field.setClearButtonEnabled(True)
        self.field.installEventFilter(self)
        lay.addWidget(self.field, 1)
        self.count = muted(QLabel())
        self.count.setMinimumWidth(self.fontMetrics().averageCharWidth() * 10)
        self.count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        lay.addWidget(self.count)
        self.previous = self._button("↑", "Previous match (Shift+Enter)", self.find_previous)
        self.next = self._button("↓", "Next match (Enter)", self.find_next)
        self._button("✕", "Close (Esc)", self.close_bar)
        self._timer = QTimer(self, singleShot=True, interval=FIND_MS)
        self._timer.timeout.connect(self._search)
        self.field.textChanged.connect(lambda _t: self._timer.start())
        view.findChanged.connect(self._show_state)
        self.hide()

    def _button(self, text: str, tip: str, slot) -> QToolButton:
        button = QToolButton(text=text)
        button.setAutoRaise(True)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        self.layout().addWidget(button)
        return button

    # ------------------------------------------------------------------ opening, closing
    def open_bar(self) -> None:
        """Show the bar with the keyboard in it (the last text selected, searched again)."""
        self.show()
        self.raise_()
        self.field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.field.selectAll()
        if self.field.text():
            self._search()

    def close_bar(self) -> None:
        self._timer.stop()
        self.view.clear_find()
        self.count.setText("")
        self.hide()

    # ------------------------------------------------------------------ searching
    def _search(self) -> None:
        self._timer.stop()
        text = self.field.text()
        if not text:
            self.view.clear_find()
            self.count.setText("")
            return
        self.view.find(text)
        self._show_state(*self.view.find_state())

    def find_next(self) -> None:
        if self._timer.isActive():
            self._search()
        self.view.find_next()

    def find_previous(self) -> None:
        if self._timer.isActive():
            self._search()
        self.view.find_previous()

    def _show_state(self, current: int, total: int) -> None:
        if not self.field.text():
            self.count.setText("")
        elif total == 0:
            self.count.setText("no match")
        else:
            self.count.setText(f"{current + 1} of {total}" if current >= 0 else f"{total}")
        for button in (self.previous, self.next):
            button.setEnabled(total > 0)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if obj is self.field and event.type() == QEvent.Type.KeyPress:
            return self._key(event)
        return super().eventFilter(obj, event)

    def _key(self, event: QKeyEvent) -> bool:
        key, shift = event.key(), bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_F3):
            (self.find_previous if shift else self.find_next)()
            return True
        if key == Qt.Key.Key_Escape:
            self.close_bar()
            return True
        return False
