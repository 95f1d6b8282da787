"""The conversation as a list model: one row per message (`MessageRow`), nothing drawn here.

The view (view.py) lays out and paints only the rows near its viewport; this model holds every
message's data, so a 1000-message chat costs a list of small objects, not 1000 widgets. Find in
conversation searches this data (all rows), not what happens to be rendered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from app.gui.chat.style import stats_line

IdRole = Qt.ItemDataRole.UserRole + 1
RowRole = Qt.ItemDataRole.UserRole + 2


@dataclass(eq=False)
class MessageRow:
    """One message as the view shows it. `version` grows with every change (text, state,
    stats), so a render or a height known for an older version is never used."""

    message_id: int
    role: str
    who: str
    text: str
    state: str = "complete"
    stats: dict[str, Any] = field(default_factory=dict)
    dropped: bool = False  # not sent to the model any more (drawn faded)
    version: int = 0

    _footer: tuple[int, str] | None = field(default=None, repr=False)

    @property
    def footer(self) -> str:
        """The muted line under a reply: its stats, why it stopped and its error (the core's
        one formatter, style.stats_line), or "writing…" while it streams; "" for others.
        Kept per version: laying out 1000 rows asks for it once each."""
        if self._footer is None or self._footer[0] != self.version:
            if self.state == "streaming":
                text = "writing…"
            else:
                text = stats_line(self.stats, self.state) if self.role == "assistant" else ""
            self._footer = (self.version, text)
        return self._footer[1]

    @property
    def details(self) -> str:
        """The footer's tooltip: what produced the reply."""
        lines = []
        for key, label in (("model", "Model"), ("template", "Template"), ("seed", "Seed"),
                           ("prompt_tokens", "Prompt tokens"),
                           ("reused_tokens", "Reused from cache")):
            if self.stats.get(key) is not None:
                lines.append(f"{label}: {self.stats[key]}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Match:
    """One occurrence of a find: the row, the message and where in its text."""

    row: int
    message_id: int
    start: int
    length: int
    nth: int  # the how-many-th occurrence in that message (0-based)


class MessageListModel(QAbstractListModel):
    """Rows of `MessageRow`. Mutations go through the methods below, which emit the standard
    model signals (reset, rows inserted / removed, data changed) the view listens to."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[MessageRow] = []
        self._index: dict[int, int] = {}  # message id → row

    # ------------------------------------------------------------------ Qt's model API
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802,B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        row = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return f"{row.who}: {row.text}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.details or None
        if role == IdRole:
            return row.message_id
        if role == RowRole:
            return row
        return None

    # ------------------------------------------------------------------ reading
    def rows(self) -> list[MessageRow]:
        return list(self._rows)

    def at(self, row: int) -> MessageRow:
        return self._rows[row]

    def __len__(self) -> int:
        return len(self._rows)

    def row_of(self, message_id: int) -> int | None:
        return self._index.get(message_id)

    def get(self, message_id: int) -> MessageRow | None:
        i = self._index.get(message_id)
        return None if i is None else self._rows[i]

    def find(self, text: str, case_sensitive: bool = False) -> list[Match]:
        """Every occurrence of `text` in the messages' text, in order (the whole data: rows
        not rendered are searched too)."""
        if not text:
            return []
        pattern = re.compile(re.escape(text), 0 if case_sensitive else re.IGNORECASE)
        out: list[Match] = []
        for i, row in enumerate(self._rows):
            for nth, m in enumerate(pattern.finditer(row.text)):
                out.append(Match(i, row.message_id, m.start(), m.end() - m.start(), nth))
        return out

    # ------------------------------------------------------------------ changing
    def set_rows(self, rows: list[MessageRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._reindex()
        self.endResetModel()

    def append_row(self, row: MessageRow) -> None:
        n = len(self._rows)
        self.beginInsertRows(QModelIndex(), n, n)
        self._rows.append(row)
        self._index[row.message_id] = n
        self.endInsertRows()

    def remove_from(self, message_id: int) -> None:
        """Remove the row of `message_id` and every later row (ids grow with time, so a
        message deleted already still cuts where it was)."""
        first = next((i for i, r in enumerate(self._rows) if r.message_id >= message_id), None)
        if first is None:
            return
        self.beginRemoveRows(QModelIndex(), first, len(self._rows) - 1)
        del self._rows[first:]
        self._reindex()
        self.endRemoveRows()

    def update(self, message_id: int, *, text: str | None = None, state: str | None = None,
               stats: dict[str, Any] | None = None, who: str | None = None) -> None:
        i = self._index.get(message_id)
        if i is None:
            return
        row = self._rows[i]
        if text is not None and text != row.text:
            row.text = text
            row.version += 1
        if state is not None and state != row.state:
            row.state = state
            row.version += 1  # the footer, so the row's height, may change
        if stats is not None and stats != row.stats:
            row.stats = dict(stats)
            row.version += 1
        if who is not None and who != row.who:
            row.who = who
            row.version += 1
        self._changed(i)

    def append_text(self, message_id: int, piece: str) -> None:
        i = self._index.get(message_id)
        if i is None or not piece:
            return
        row = self._rows[i]
        row.text += piece
        row.version += 1
        self._changed(i)

    def set_dropped(self, turns: int) -> None:
        """Mark the rows of the oldest `turns` exchanges (an exchange starts at a user
        message) as dropped: they are no longer sent to the model."""
        seen = 0
        changed = []
        for i, row in enumerate(self._rows):
            if row.role == "user":
                seen += 1
            dropped = 0 < seen <= turns
            if dropped != row.dropped:
                row.dropped = dropped
                changed.append(i)
        if changed:
            self.dataChanged.emit(self.index(changed[0]), self.index(changed[-1]))

    def _changed(self, i: int) -> None:
        index = self.index(i)
        self.dataChanged.emit(index, index)

    def _reindex(self) -> None:
        self._index = {r.message_id: i for i, r in enumerate(self._rows)}
