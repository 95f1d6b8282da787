"""Chat mode's view: the conversation as a list that scales (issue 17 §1).

Messages are rows of a `MessageListModel` (messages/model.py); only the rows near the viewport
are rendered (Markdown and highlighted code, cached per message and width, least recently used
evicted) and painted (messages/view.py, painter.py); the actions are drawn and hit-tested
(messages/interaction.py). A 1000-message chat opens at its end at once and scrolls to its top
without a freeze, and memory follows what is on screen, not the chat's length.

This module is the API the chat screen uses (bound to the chat session by message_binding.py):
content, streaming (shown at most every RENDER_MS, less often when rendering is slow), state,
and the empty conversation's greeting. Colours follow QPalette.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from app.gui.chat.messages.interaction import InteractiveListView
from app.gui.chat.messages.model import MessageListModel, MessageRow
from app.gui.chat.messages.painter import COLUMN_WIDTH
from app.gui.chat.style import muted

__all__ = ["COLUMN_WIDTH", "EmptyState", "MessageView", "RENDER_MS"]

# A streaming reply is shown at most this often: 10 a second reads smoothly, and each redraw takes
# CPU from the model, which decodes on the same cores (bench/ui_latency.py: window ÷ engine).
RENDER_MS = 100


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
        lay.addStretch(1)
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


class MessageView(InteractiveListView):
    """The conversation. Signals: editRequested(id), regenerateRequested(id),
    inspectRequested(id), copied(str), libraryRequested(), findChanged(current, total),
    branchRequested(id, step) (reserved)."""

    libraryRequested = Signal()

    def __init__(self, parent: QWidget | None = None,
                 model: MessageListModel | None = None) -> None:
        super().__init__(model, parent)
        self.empty = EmptyState(self)
        self.empty.library_button.clicked.connect(self.libraryRequested)
        self.streaming_id: int | None = None
        self._pending = ""
        self._render_cost = 0.0
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self._render_stream)
        self._show_empty()

    def model_(self) -> MessageListModel:
        return self.messages

    # ------------------------------------------------------------------ content
    def set_conversation(self, messages: list[Any], who_for: Callable[[Any], str]) -> None:
        """Show `messages` (app.core.chats.Message; who_for(message) names the speaker), at
        their end. A find in progress is cleared (its matches were the other chat's)."""
        self._timer.stop()
        self.streaming_id, self._pending = None, ""
        self.close_selector()
        self.current_id = None
        if self.find_state()[1] or self._needle:
            self.clear_find()
        self.messages.set_rows([MessageRow(m.id, m.role, who_for(m), m.content, m.state,
                                           dict(m.stats)) for m in messages])
        if messages and self.hasFocus():  # the keyboard starts from the end, where the eyes are
            self.current_id = messages[-1].id
        self.scroll_to_end()
        self._show_empty()

    def clear(self) -> None:
        self.set_conversation([], str)

    def append_message(self, message: Any, who: str) -> None:
        self.stick = True
        self.messages.append_row(MessageRow(message.id, message.role, who, message.content,
                                            message.state, dict(message.stats)))
        self._show_empty()

    def update_message(self, message_id: int, *, text: str | None = None,
                       state: str | None = None, stats: dict | None = None) -> None:
        self.messages.update(message_id, text=text, state=state, stats=stats)

    def remove_from(self, message_id: int) -> None:
        """Remove the row of `message_id` and every later one."""
        if self.streaming_id is not None and self.streaming_id >= message_id:
            self._timer.stop()
            self.streaming_id, self._pending = None, ""
        if self.selector is not None and self.selector.message_id >= message_id:
            self.close_selector()
        self.messages.remove_from(message_id)
        self._show_empty()

    def set_has_models(self, has_models: bool) -> None:
        self.empty.set_has_models(has_models)

    def rows(self) -> list[MessageRow]:
        return self.messages.rows()

    def row(self, message_id: int) -> MessageRow | None:
        return self.messages.get(message_id)

    def message_ids(self) -> list[int]:
        return [r.message_id for r in self.messages.rows()]

    def footer_text(self, message_id: int) -> str:
        """The footer line as painted ("" for your messages)."""
        row = self.messages.get(message_id)
        return row.footer if row is not None else ""

    def dropped_ids(self) -> list[int]:
        return [r.message_id for r in self.messages.rows() if r.dropped]

    # ------------------------------------------------------------------ state
    def set_busy(self, busy: bool) -> None:
        """While a reply is written, Edit and Regenerate are off."""
        self.busy = busy
        self.viewport().update()

    def set_dropped_turns(self, turns: int) -> None:
        """Fade the oldest `turns` exchanges: they will not be sent to the model."""
        self.messages.set_dropped(turns)

    def scroll_to_bottom(self) -> None:
        self.scroll_to_end()

    def scroll_to_message(self, message_id: int) -> None:
        i = self.messages.row_of(message_id)
        if i is not None:
            self.ensure_visible(i)

    def at_bottom(self) -> bool:
        return self.at_end()

    # ------------------------------------------------------------------ streaming
    def begin_stream(self, message: Any, who: str) -> None:
        self.append_message(message, who)
        self.streaming_id = message.id
        self._pending = ""

    def append(self, piece: str) -> None:
        if self.streaming_id is None:
            return
        self._pending += piece
        if not self._timer.isActive():
            # Never more often than RENDER_MS, and never more than a quarter of the time.
            self._timer.start(max(RENDER_MS, int(self._render_cost * 4000)))

    def _render_stream(self) -> None:
        if self.streaming_id is None or not self._pending:
            return
        t0 = time.perf_counter()
        added, self._pending = self._pending, ""
        self.messages.append_text(self.streaming_id, added)  # only that row is laid out again
        self._render_cost = time.perf_counter() - t0

    def end_stream(self, state: str, stats: dict[str, Any], text: str | None = None) -> None:
        """The reply ended: show `text` (what the store saved) or what streamed, and its
        footer (stats, why it stopped)."""
        mid, self.streaming_id = self.streaming_id, None
        self._timer.stop()
        if mid is None:
            return
        row = self.messages.get(mid)
        final = text if text is not None else (row.text if row else "") + self._pending
        self._pending = ""
        self.messages.update(mid, text=final, state=state, stats=stats)

    # ------------------------------------------------------------------ the rest
    def _show_empty(self) -> None:
        empty = not len(self.messages)
        self.empty.setVisible(empty)
        if empty:
            self._place_empty()

    def _place_empty(self) -> None:
        rect = self.viewport().geometry()
        self.empty.setGeometry(rect)
        self.empty.setContentsMargins(0, int(rect.height() * 0.28), 0, 0)

    def resizeEvent(self, event) -> None:  # noqa: N802 - the greeting sits a third down
        super().resizeEvent(event)
        self._place_empty()

    @staticmethod
    def warm_up() -> None:
        """Pay first-use costs once idle after start-up (not in the first reply): render a
        throw-away message with Markdown and highlighted code, so PySide makes its lazily
        created types and Pygments' lexer is loaded."""
        from PySide6.QtWidgets import QApplication

        from app.gui.chat.messages.render import Look, RenderCache

        app = QApplication.instance()
        cache = RenderCache(capacity=1)
        cache.get(0, "**warm** `up`\n\n- a\n\n```python\nx = 1\n```", 0, 300,
                  Look(app.font(), app.palette()))
        cache.clear()
