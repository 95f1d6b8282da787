"""Chat mode's view: a column of message bubbles (layout only; the bubbles are in bubble.py).

The column sticks to the bottom while a reply grows; streamed text is shown at most every
RENDER_MS (longer when rendering is slow). Colours follow QPalette.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea,
                               QVBoxLayout, QWidget)

from app.gui.chat.bubble import MessageBubble
from app.gui.chat.style import muted

RENDER_MS = 66       # a streaming reply is shown at most this often
COLUMN_WIDTH = 860
SHOWN_AT_FIRST = 60  # older messages wait behind "Show earlier messages"


class EmptyState(QWidget):
    """What an empty conversation shows: a greeting and the keys, or the way to a first model."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setSpacing(10)
        self.title = QLabel("What shall we talk about?")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setWeight(font.Weight.DemiBold)
        self.title.setFont(font)
        self.hint = muted(QLabel())
        self.hint.setWordWrap(True)
        self.library_button = QPushButton("Open the Library")
        for w in (self.title, self.hint):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
            lay.addWidget(w)
        lay.addWidget(self.library_button, 0, Qt.AlignmentFlag.AlignHCenter)
        self.set_has_models(True)

    def set_has_models(self, has_models: bool) -> None:
        if has_models:
            self.title.setText("What shall we talk about?")
            self.hint.setText("Everything stays on this computer: the model, your messages and "
                              "its replies.\nEnter sends · Shift+Enter starts a new line · "
                              "Esc stops a reply")
        else:
            self.title.setText("Add a model to start chatting")
            self.hint.setText("Download one from the catalog, or import a GGUF file you "
                              "already have, in the Library.")
        self.library_button.setVisible(not has_models)


class MessageView(QScrollArea):
    """The conversation: bubbles in a centred column, sticking to the bottom while it grows."""

    editRequested = Signal(int)
    regenerateRequested = Signal(int)
    libraryRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer = QWidget()
        outer.setBackgroundRole(QPalette.ColorRole.Base)
        outer.setAutoFillBackground(True)
        row = QHBoxLayout(outer)
        row.setContentsMargins(16, 16, 16, 16)
        self.column = QWidget()
        self.column.setMaximumWidth(COLUMN_WIDTH)
        self.lay = QVBoxLayout(self.column)
        self.lay.setContentsMargins(0, 0, 0, 0)
        self.lay.setSpacing(14)
        self.more_button = QPushButton()
        self.more_button.setFlat(True)
        self.more_button.clicked.connect(self._show_earlier)
        self.more_button.hide()
        self.lay.addWidget(self.more_button, 0, Qt.AlignmentFlag.AlignHCenter)
        self.empty = EmptyState()
        self.empty.library_button.clicked.connect(self.libraryRequested)
        self.lay.addWidget(self.empty)
        self.lay.addStretch(1)
        row.addStretch(0)
        row.addWidget(self.column, 1)
        row.addStretch(0)
        self.setWidget(outer)
        self.bubbles: list[MessageBubble] = []
        self._hidden: list[tuple[Any, str]] = []
        self.streaming: MessageBubble | None = None
        self._dirty = False
        self._pending = ""
        self._render_cost = 0.0
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self._render_stream)
        self._stick = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(lambda v: setattr(self, "_stick", v >= bar.maximum() - 40))
        bar.rangeChanged.connect(lambda _lo, hi: self._stick and bar.setValue(hi))

    # ------------------------------------------------------------------ building
    def clear(self) -> None:
        self._timer.stop()
        for bubble in self.bubbles:
            bubble.deleteLater()
        self.bubbles, self._hidden, self.streaming = [], [], None
        self.more_button.hide()
        self.empty.show()
        self._stick = True

    def set_messages(self, messages: list[Any], who_for) -> None:
        """Show `messages` (app.core.chats.Message); who_for(message) names the speaker."""
        self.clear()
        older, recent = messages[:-SHOWN_AT_FIRST], messages[-SHOWN_AT_FIRST:]
        self._hidden = [(m, who_for(m)) for m in older]
        for m in recent:
            self._append_bubble(m, who_for(m))
        self._update_more()
        self.scroll_to_bottom()

    def _make(self, message: Any, who: str) -> MessageBubble:
        bubble = MessageBubble(message.id, message.role, who)
        bubble.copyRequested.connect(lambda text: QGuiApplication.clipboard().setText(text))
        bubble.editRequested.connect(self.editRequested)
        bubble.regenerateRequested.connect(self.regenerateRequested)
        bubble.set_text(message.content)
        bubble.set_state(message.state, message.stats)
        return bubble

    def _place(self, bubble: MessageBubble, index: int) -> None:
        # Replies use the column's width; your messages sit on the right, a little narrower.
        align = Qt.AlignmentFlag.AlignRight if bubble.role == "user" else Qt.AlignmentFlag(0)
        if bubble.role == "user":
            bubble.setMaximumWidth(int(COLUMN_WIDTH * 0.85))
        self.lay.insertWidget(index, bubble, 0, align)

    def _append_bubble(self, message: Any, who: str) -> MessageBubble:
        bubble = self._make(message, who)
        self._place(bubble, self.lay.count() - 1)  # before the stretch
        self.bubbles.append(bubble)
        self.empty.hide()
        self._update_actions()
        return bubble

    def add_message(self, message: Any, who: str) -> MessageBubble:
        self._stick = True
        return self._append_bubble(message, who)

    def _show_earlier(self) -> None:
        batch, self._hidden = self._hidden[-SHOWN_AT_FIRST:], self._hidden[:-SHOWN_AT_FIRST]
        made = [self._make(m, who) for m, who in batch]
        for i, bubble in enumerate(made):
            self._place(bubble, 1 + i)  # after the button
        self.bubbles[:0] = made
        self._update_more()

    def _update_more(self) -> None:
        self.more_button.setText(f"Show {len(self._hidden)} earlier messages")
        self.more_button.setVisible(bool(self._hidden))

    def remove_from(self, message_id: int) -> None:
        """Remove the bubble of `message_id` and every later one."""
        keep = [b for b in self.bubbles if b.message_id < message_id]
        for bubble in self.bubbles[len(keep):]:
            bubble.deleteLater()
        self.bubbles = keep
        self.empty.setVisible(not keep and not self._hidden)
        self._update_actions()

    def bubble(self, message_id: int) -> MessageBubble | None:
        return next((b for b in self.bubbles if b.message_id == message_id), None)

    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        self._update_actions()

    def _update_actions(self) -> None:
        busy = getattr(self, "_busy", False)
        last_reply = next((b for b in reversed(self.bubbles) if b.role == "assistant"), None)
        for b in self.bubbles:
            b.set_actions_enabled(not busy)
            if b.regen_button is not None:
                b.regen_button.setVisible(b is last_reply)

    def set_dropped_turns(self, turns: int) -> None:
        """Fade the oldest `turns` exchanges: they will not be sent to the model."""
        seen = len([m for m, _ in self._hidden if m.role == "user"])
        for b in self.bubbles:
            if b.role == "user":
                seen += 1
            b.set_dropped(0 < seen <= turns)

    # ------------------------------------------------------------------ streaming
    def begin_stream(self, message: Any, who: str) -> MessageBubble:
        self.streaming = self.add_message(message, who)
        self._dirty = False
        self._pending = ""
        return self.streaming

    def append(self, piece: str) -> None:
        if self.streaming is None:
            return
        self._pending += piece
        self._dirty = True
        if not self._timer.isActive():
            # Never more often than RENDER_MS, and never more than a quarter of the time.
            self._timer.start(max(RENDER_MS, int(self._render_cost * 4000)))

    def _render_stream(self) -> None:
        if self.streaming is None or not self._dirty:
            return
        t0 = time.perf_counter()
        self._dirty = False
        added, self._pending = self._pending, ""
        self.streaming.grow(added)
        self._render_cost = time.perf_counter() - t0

    def end_stream(self, state: str, stats: dict[str, Any], text: str | None = None) -> None:
        bubble, self.streaming = self.streaming, None
        self._timer.stop()
        if bubble is None:
            return
        bubble.text = text if text is not None else bubble.text + self._pending
        self._pending = ""
        bubble.render()
        bubble.set_state(state, stats)
        self._update_actions()

    def resizeEvent(self, event) -> None:  # noqa: N802 - the greeting sits a third down
        super().resizeEvent(event)
        self.empty.setContentsMargins(0, int(self.viewport().height() * 0.28), 0, 0)

    def scroll_to_bottom(self) -> None:
        self._stick = True
        QTimer.singleShot(0, self, lambda: self.verticalScrollBar().setValue(
            self.verticalScrollBar().maximum()))
