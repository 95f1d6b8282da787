"""A message rendered for painting: its prose as Markdown `QTextDocument`s and its fenced code
blocks as highlighted monospace documents, laid out at one width. Made only for rows near the
viewport and kept in an LRU cache (`RenderCache`), so memory follows what is on screen.

A streaming reply is updated in place (`update_text`): new text without fence characters is
appended to the last document as it is (only its last paragraph is laid out again), and the
whole reply is parsed as Markdown again at most every MARKDOWN_MS (less often when that is
slow), reusing the documents of segments that did not change.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from PySide6.QtCore import QObject
from PySide6.QtGui import (QColor, QFont, QFontDatabase, QFontMetrics, QPalette, QTextCursor,
                           QTextDocument, QTextOption)

from app.gui.chat.highlight import CodeHighlighter, background, is_dark, style_name
from app.gui.chat.segments import Segment, split_markdown
from app.gui.chat.style import blend

MARKDOWN_MS = 300      # a streaming reply is parsed as Markdown again at most this often
MAX_SHOWN_CHARS = 40_000   # a longer message shows its start (Copy and Select take it all)
MAX_SHOWN_LINES = 400
_FENCE_CHARS = set("`~")
CODE_PAD = 8           # inside a code block, around the code
PART_GAP = 8           # between the parts of a message


class Look:
    """Fonts and colours the rows are drawn with, from the view's font and palette."""

    def __init__(self, font: QFont, palette: QPalette) -> None:
        self.font = QFont(font)
        self.bold = QFont(font)
        self.bold.setBold(True)
        self.small = QFont(font)
        self.small.setPointSizeF(max(7.0, font.pointSizeF() * 0.88))
        self.mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.mono.setPointSizeF(font.pointSizeF() * 0.95)
        self.line = QFontMetrics(self.font).lineSpacing()
        self.bold_line = QFontMetrics(self.bold).lineSpacing()
        self.small_line = QFontMetrics(self.small).lineSpacing()
        self.mono_line = QFontMetrics(self.mono).lineSpacing()
        self.char_w = max(1.0, QFontMetrics(self.font).averageCharWidth() * 1.0)
        self.mono_w = max(1.0, QFontMetrics(self.mono).horizontalAdvance("m") * 1.0)
        self.palette = QPalette(palette)
        self.style = style_name(palette)
        self.dark = is_dark(palette)
        self.code_bg = QColor(background(self.style))
        self.code_text = QColor("#f8f8f2") if self.dark else QColor("#1f2328")
        text = palette.color(QPalette.ColorRole.Text)
        self.code_edge = blend(self.code_bg, text, 0.15)
        self.code_header = QFontMetrics(self.small).lineSpacing() + 6

    def key(self) -> tuple:
        return (self.font.toString(), self.style)


@dataclass
class Part:
    """One segment drawn: prose (Markdown) or a fenced code block. `y` is its top in the body."""

    segment: Segment
    doc: QTextDocument
    highlighter: CodeHighlighter | None = None
    y: int = 0
    height: int = 0

    @property
    def is_code(self) -> bool:
        return self.segment.kind == "code"


class RenderedMessage:
    """The documents of one message at one width; `height` is the body's height in pixels."""

    def __init__(self, message_id: int, text: str, version: int, width: int, look: Look,
                 owner: QObject) -> None:
        self.message_id = message_id
        self.look, self.owner = look, owner
        self.look_key = look.key()
        self.width = max(40, width)
        self.version = version
        self.text = ""
        self.shown = ""
        self.hidden_lines = 0  # lines of a huge message not shown
        self.parts: list[Part] = []
        self.height = 0
        self.natural_width = 0
        self._last_full = 0.0
        self._full_cost = 0.0
        self._set(text)

    # ------------------------------------------------------------------ content
    def update_text(self, text: str, version: int, streaming: bool = False) -> None:
        """The message changed (a streaming reply grew, an edit, its end): update what must
        be. While it streams, new text is appended as it is when it cannot change the
        segments; once it stops, a text appended that way is parsed as Markdown again."""
        self.version = version
        if text == self.text and (streaming or not self._partial):
            return
        grown = text.startswith(self.text) and self.parts and not self.hidden_lines
        added = text[len(self.text):] if grown else ""
        if streaming and grown and len(text) <= MAX_SHOWN_CHARS \
                and not (set(added) & _FENCE_CHARS):
            last = self.parts[-1]
            open_code = last.is_code and not last.segment.closed
            recent = time.monotonic() - self._last_full < max(MARKDOWN_MS / 1000,
                                                                20 * self._full_cost)
            if open_code or (recent and not last.is_code):
                self.text = self.shown = text
                cursor = QTextCursor(last.doc)
                cursor.movePosition(QTextCursor.MoveOperation.End)
                cursor.insertText(added)
                # Prose appended as it is is marked not `closed`, so the next full render
                # (whose segments are all closed prose) sees it differs and parses it again.
                last.segment = Segment(last.segment.kind, last.segment.text + added,
                                       last.segment.lang, last.segment.closed and open_code)
                self._partial = not open_code  # prose appended as plain text
                self._measure()
                return
        self._set(text)

    def _set(self, text: str) -> None:
        t0 = time.monotonic()
        self._partial = False
        self.text = text
        self.shown, self.hidden_lines = _shown(text)
        segments = split_markdown(self.shown) or [Segment("text", "")]
        keep = 0
        for part, seg in zip(self.parts, segments):
            if part.segment.kind != seg.kind or part.segment.lang != seg.lang:
                break
            keep += 1
        for part in self.parts[keep:]:
            part.doc.deleteLater()
        self.parts = self.parts[:keep]
        for i, seg in enumerate(segments):
            if i < keep:
                part = self.parts[i]
                if part.segment != seg:
                    self._fill(part.doc, seg)
                    part.segment = seg
                continue
            doc, hl = self._make(seg)
            self.parts.append(Part(seg, doc, hl))
        self._measure()
        self._last_full = time.monotonic()
        self._full_cost = self._last_full - t0

    def _make(self, seg: Segment) -> tuple[QTextDocument, CodeHighlighter | None]:
        doc = QTextDocument(self.owner)
        doc.setDocumentMargin(0)
        doc.setUndoRedoEnabled(False)
        hl = None
        if seg.kind == "code":
            doc.setDefaultFont(self.look.mono)
            option = QTextOption()
            option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
            doc.setDefaultTextOption(option)
            # Made while the document is empty, the highlighter colours the text as it is
            # set (synchronously), not on a later turn of the event loop.
            hl = CodeHighlighter(doc, seg.lang, self.look.style)
        else:
            doc.setDefaultFont(self.look.font)
        doc.setTextWidth(self._doc_width(seg.kind == "code"))
        self._fill(doc, seg)
        return doc, hl

    @staticmethod
    def _fill(doc: QTextDocument, seg: Segment) -> None:
        if seg.kind == "code":
            doc.setPlainText(seg.text)
        else:
            doc.setMarkdown(seg.text)

    # ------------------------------------------------------------------ geometry
    def _doc_width(self, code: bool) -> int:
        return max(20, self.width - 2 * CODE_PAD) if code else self.width

    def set_width(self, width: int) -> None:
        width = max(40, width)
        if width == self.width:
            return
        self.width = width
        for part in self.parts:
            part.doc.setTextWidth(self._doc_width(part.is_code))
        self._measure()

    def _measure(self) -> None:
        y, natural = 0, 0
        look = self.look
        for i, part in enumerate(self.parts):
            if i:
                y += PART_GAP
            part.y = y
            doc_h = math.ceil(part.doc.size().height())
            if part.is_code:
                part.height = look.code_header + doc_h + CODE_PAD
                natural = self.width
            else:
                part.height = max(doc_h, look.line if not part.segment.text else 0)
                natural = max(natural, math.ceil(part.doc.idealWidth()))
            y += part.height
        if self.hidden_lines:  # room for "… N more lines" under the text
            y += look.small_line + 4
        self.height = max(y, look.line)
        self.natural_width = min(self.width, natural)

    def code_rect_top(self, part: Part) -> int:
        """Where the code itself starts in a code part (below its language and Copy)."""
        return part.y + self.look.code_header

    def dispose(self) -> None:
        for part in self.parts:
            part.doc.deleteLater()
        self.parts = []


def _shown(text: str) -> tuple[str, int]:
    """The part of `text` that is rendered, and how many lines are left out (a huge paste
    shows its start: rendering 20,000 lines of Markdown would hold the window for seconds)."""
    if len(text) <= MAX_SHOWN_CHARS and text.count("\n") < MAX_SHOWN_LINES:
        return text, 0
    head = text[:MAX_SHOWN_CHARS]
    lines = head.split("\n")[:MAX_SHOWN_LINES]
    shown = "\n".join(lines)
    if shown.count("```") % 2 or shown.count("~~~") % 2:
        shown += "\n```"
    return shown, text.count("\n") + 1 - len(lines)


class RenderCache:
    """Rendered messages by message id, least recently used evicted beyond `capacity`. The
    documents are children of one QObject, so `documents()` counts what Qt really holds."""

    def __init__(self, capacity: int = 96) -> None:
        self.capacity = capacity
        self.owner = QObject()
        self._items: OrderedDict[int, RenderedMessage] = OrderedDict()
        self.made = 0  # messages rendered from scratch since the start (for tests and benches)

    def get(self, message_id: int, text: str, version: int, width: int, look: Look,
            streaming: bool = False) -> RenderedMessage:
        item = self._items.get(message_id)
        if item is not None and item.look_key != look.key():
            self.drop(message_id)
            item = None
        if item is None:
            item = RenderedMessage(message_id, text, version, width, look, self.owner)
            self.made += 1
            self._items[message_id] = item
            while len(self._items) > self.capacity:
                _, old = self._items.popitem(last=False)
                old.dispose()
        else:
            self._items.move_to_end(message_id)
            item.set_width(width)
            item.update_text(text, version, streaming)
        return item

    def peek(self, message_id: int) -> RenderedMessage | None:
        return self._items.get(message_id)

    def drop(self, message_id: int) -> None:
        item = self._items.pop(message_id, None)
        if item is not None:
            item.dispose()

    def clear(self) -> None:
        for item in self._items.values():
            item.dispose()
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def documents(self) -> int:
        """Text documents alive now (those of evicted messages are deleted)."""
        return len(self.owner.findChildren(QTextDocument))
