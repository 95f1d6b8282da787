"""A reply saved as it grows: `ChatStore.begin_reply` makes the message, `ReplyWriter` keeps it.

A crash mid-reply loses at most `interval_s` of text: the message is in state "streaming" until
`finish`, and the next start marks such replies "interrupted" (ChatStore.recover_interrupted).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.core.chats import ChatStore


class ReplyWriter:
    """Saves a streaming reply: `append` pieces (from any one thread); the text is written at
    most every `interval_s` or when `max_pending` characters wait; `finish` writes it all with
    its final state and stats. Not thread-safe: one thread appends and finishes."""

    def __init__(self, store: ChatStore, message_id: int, conversation_id: int,
                 stats: dict[str, Any], interval_s: float, max_pending: int) -> None:
        self.store, self.message_id, self.conversation_id = store, message_id, conversation_id
        self.stats = dict(stats)
        self.interval_s, self.max_pending = interval_s, max_pending
        self._parts: list[str] = []
        self._pending = 0
        self._last_write = time.monotonic()
        self.writes = 0
        self.finished = False

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def append(self, piece: str) -> None:
        if not piece or self.finished:
            return
        self._parts.append(piece)
        self._pending += len(piece)
        now = time.monotonic()
        if now - self._last_write >= self.interval_s or self._pending >= self.max_pending:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if self._pending:
            text = self.text
            self._parts = [text]
            self.store.update_message(self.message_id, content=text)
            self._pending = 0
            self.writes += 1
        self._last_write = time.monotonic() if now is None else now

    def finish(self, state: str, stats: dict[str, Any] | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        self.stats.update(stats or {})
        self.store.update_message(self.message_id, content=self.text, state=state,
                                  stats=self.stats)
        self.store.touch(self.conversation_id)
