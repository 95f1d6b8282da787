"""Find in a conversation (Ctrl+F): every message's text is searched (the model's rows, not the
widgets), the view goes to the match nearest the end, and the occurrences in the messages on
screen are painted as selections (the current one strong). The matches follow the messages as
they change (a reply streaming in, an edit, rows removed) without scrolling.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QTextCursor, QTextDocument
from PySide6.QtWidgets import QWidget

from app.gui.chat.messages.model import Match, MessageListModel, MessageRow
from app.gui.chat.messages.painter import HEADER_GAP, PAD_TOP
from app.gui.chat.messages.render import RenderedMessage
from app.gui.chat.messages.view import MessageListView


class FindableListView(MessageListView):
    """The message list with find; `find_selections(row)` gives the painter what to mark."""

    findChanged = Signal(int, int)       # (current match or -1, number of matches)

    def __init__(self, model: MessageListModel | None = None,
                 parent: QWidget | None = None) -> None:
        self._needle, self._case = "", False
        self._matches: list[Match] = []
        self._match_ids: set[int] = set()
        self._match = -1
        self._occurrences: dict[tuple, list[tuple[int, QTextCursor]]] = {}
        super().__init__(model, parent)
        for signal in (self.messages.modelReset, self.messages.rowsInserted,
                       self.messages.rowsRemoved, self.messages.dataChanged):
            signal.connect(self._refind)

    def find(self, text: str, *, case_sensitive: bool = False) -> int:
        """Search every message's text; go to the match nearest the end. The match count."""
        self._needle, self._case = text, case_sensitive
        self._matches = self.messages.find(text, case_sensitive)
        self._match_ids = {m.message_id for m in self._matches}
        self._occurrences.clear()
        if self._matches:
            self.go_to_match(len(self._matches) - 1)
        else:
            self._match = -1
            self.viewport().update()
            self.findChanged.emit(-1, 0)
        return len(self._matches)

    def _refind(self, *_args) -> None:
        """The messages changed: search them again, staying at the same match (or the one
        now at its place), without scrolling."""
        if not self._needle:
            return
        old = self._matches[self._match] if 0 <= self._match < len(self._matches) else None
        self._matches = self.messages.find(self._needle, self._case)
        self._match_ids = {m.message_id for m in self._matches}
        self._occurrences.clear()
        keys = [(m.message_id, m.nth) for m in self._matches]
        if old is not None and (old.message_id, old.nth) in keys:
            self._match = keys.index((old.message_id, old.nth))
        else:
            self._match = min(self._match, len(self._matches) - 1)
        self.findChanged.emit(self._match, len(self._matches))

    def find_state(self) -> tuple[int, int]:
        return self._match, len(self._matches)

    def matches(self) -> list[Match]:
        return list(self._matches)

    def find_next(self) -> None:
        if self._matches:
            self.go_to_match((self._match + 1) % len(self._matches))

    def find_previous(self) -> None:
        if self._matches:
            self.go_to_match((self._match - 1) % len(self._matches))

    def clear_find(self) -> None:
        self._needle, self._matches, self._match, self._match_ids = "", [], -1, set()
        self._occurrences.clear()
        self.viewport().update()
        self.findChanged.emit(-1, 0)

    def go_to_match(self, n: int) -> None:
        if not 0 <= n < len(self._matches):
            return
        self._match = n
        match = self._matches[n]
        if self.messages.row_of(match.message_id) != match.row:  # stale: search again
            return self._refind()
        rendered = self.rendered(match.row)
        occurrences = self._occurrences_in(rendered)
        y = None
        if occurrences:
            part_index, cursor = occurrences[min(match.nth, len(occurrences) - 1)]
            part = rendered.parts[part_index]
            block = cursor.block()
            line = block.layout().lineForTextPosition(cursor.position() - block.position())
            y = (PAD_TOP + self.painter.header_height(self.messages.at(match.row)) + HEADER_GAP
                 + part.y
                 + (self.look.code_header if part.is_code else 0)
                 + int(part.doc.documentLayout().blockBoundingRect(block).y())
                 + (int(line.y()) if line.isValid() else 0))
        self.set_current(match.message_id, scroll=False)
        self.ensure_visible(match.row, y)
        self.findChanged.emit(n, len(self._matches))

    def _occurrences_in(self, rendered: RenderedMessage) -> list[tuple[int, QTextCursor]]:
        key = (rendered.message_id, rendered.version, rendered.width, self._needle, self._case)
        found = self._occurrences.get(key)
        if found is None:
            found = []
            flags = QTextDocument.FindFlag.FindCaseSensitively if self._case \
                else QTextDocument.FindFlag(0)
            for i, part in enumerate(rendered.parts):
                cursor = part.doc.find(self._needle, 0, flags)
                while not cursor.isNull():
                    found.append((i, cursor))
                    cursor = part.doc.find(self._needle, cursor, flags)
            if len(self._occurrences) > 256:
                self._occurrences.clear()
            self._occurrences[key] = found
        return found

    def find_selections(self, row: MessageRow) -> dict[int, list]:
        """{part index: [(cursor, is the current match)]} of the matches in this row."""
        selections: dict[int, list] = {}
        if self._needle and self._matches:
            rendered = self.cache.peek(row.message_id)
            current = self._matches[self._match] if self._match >= 0 else None
            if rendered is not None and row.message_id in self._match_ids:
                occ = self._occurrences_in(rendered)
                strong = -1
                if current is not None and current.message_id == row.message_id:
                    strong = min(current.nth, len(occ) - 1)
                for k, (part, cursor) in enumerate(occ):
                    selections.setdefault(part, []).append((cursor, k == strong))
        return selections
