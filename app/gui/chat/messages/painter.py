"""How one row looks and where its parts are: the delegate of the message list.

`box()` places a row (the bubble, who, the body, the footer with the stats line and the action
buttons, each code block's Copy) from its rendered documents; `paint()` draws it; the view
hit-tests the same boxes for clicks and hovers, so what is drawn is what is clicked.
Replies use the column's width; your own messages sit on the right, as wide as their text
needs, up to USER_SHARE of the column.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QPointF, QRect, QRectF, Qt
from PySide6.QtGui import (QAbstractTextDocumentLayout, QColor, QFontMetrics, QPainter,
                           QPalette, QTextCharFormat)

from app.gui.chat.messages.model import MessageRow
from app.gui.chat.messages.render import CODE_PAD, Look, RenderedMessage
from app.gui.chat.style import blend

COLUMN_WIDTH = 860   # the conversation's column at most (a readable measure)
USER_SHARE = 0.8     # your messages: at most this share of the column
SIDE, TOP = 16, 16   # the column's margins in the view
PAD_X, PAD_TOP, PAD_BOTTOM = 14, 10, 8
HEADER_GAP, FOOTER_GAP, ROW_GAP = 6, 4, 14
FOOTER_LINES = 3     # a long footer (an error's message) wraps to at most this many lines

ACTION_LABELS = {"copy": "Copy", "edit": "Edit", "regenerate": "Regenerate",
                 "inspect": "Prompt", "menu": "⋯"}
ACTION_TIPS = {"copy": "Copy this message (Ctrl+C)", "edit": "Edit this message and send it again",
               "regenerate": "Write this reply again", "inspect": "Show the prompt sent for it",
               "menu": "More: select text, copy a code block… (Menu key)"}


@dataclass
class RowBox:
    """A row's geometry in view coordinates."""

    bubble: QRect
    body: QRect                      # where the documents are drawn (its width = the layout's)
    footer: QRect
    stats_width: int = 0
    buttons: list[tuple[str, QRect]] = field(default_factory=list)
    code_copy: list[tuple[int, QRect]] = field(default_factory=list)  # (part index, rect)

    def hit(self, pos) -> tuple[str, int] | None:
        """('action', -1) for a footer button, ('code', part) for a code block's Copy."""
        for name, rect in self.buttons:
            if rect.contains(pos):
                return name, -1
        for part, rect in self.code_copy:
            if rect.contains(pos):
                return "code", part
        return None


class MessagePainter:
    """Geometry and painting of rows, for one look (fonts, colours)."""

    def __init__(self, look: Look) -> None:
        self.look = look
        self.small_metrics = QFontMetrics(look.small)
        self.button_h = look.small_line + 6
        self.chrome = PAD_TOP + HEADER_GAP + PAD_BOTTOM + ROW_GAP
        self.compact_header = max(look.bold_line, self.button_h)
        self._footer_lines: dict[tuple[str, int], int] = {}
        self._button_w = {name: self.small_metrics.horizontalAdvance(label) + 12
                          for name, label in ACTION_LABELS.items()}

    # ------------------------------------------------------------------ widths and heights
    @staticmethod
    def column(view_width: int) -> tuple[int, int]:
        """(x, width) of the conversation's column in a view `view_width` wide."""
        width = max(120, min(COLUMN_WIDTH, view_width - 2 * SIDE))
        return max(SIDE, (view_width - width) // 2), width

    @staticmethod
    def body_width(role: str, column_width: int) -> int:
        """The width the documents of a row are laid out at."""
        bubble = int(column_width * USER_SHARE) if role == "user" else column_width
        return max(40, bubble - 2 * PAD_X)

    @staticmethod
    def compact(row: MessageRow) -> bool:
        """Rows without a stats line (yours) carry their actions in the header line, so
        they end right under their text."""
        return row.role != "assistant"

    def header_height(self, row: MessageRow) -> int:
        return self.compact_header if self.compact(row) else self.look.bold_line

    def row_height(self, row: MessageRow, body_height: int, column_width: int) -> int:
        foot = 0 if self.compact(row) else FOOTER_GAP + self.footer_height(row, column_width)
        return self.chrome + self.header_height(row) + body_height + foot

    def _stats_width(self, role: str, column_width: int) -> int:
        """The width the stats line may take: the footer less the widest set of actions (so
        a row's height never depends on which actions it shows)."""
        widest = ("copy", "regenerate", "inspect", "menu") if role == "assistant" \
            else ("copy", "edit", "menu")
        buttons = sum(self._button_w[n] + 2 for n in widest)
        return max(60, self.body_width(role, column_width) - buttons - 6)

    def footer_height(self, row: MessageRow, column_width: int) -> int:
        """One line (the buttons' height), or up to FOOTER_LINES when the line (an error's
        message) needs them."""
        text = row.footer
        width = self._stats_width(row.role, column_width)
        if not text or len(text) * self.look.char_w * 1.3 < width:
            return self.button_h
        key = (text, width)
        lines = self._footer_lines.get(key)
        if lines is None:
            rect = self.small_metrics.boundingRect(QRect(0, 0, width, 10_000),
                                                   Qt.TextFlag.TextWordWrap, text)
            lines = max(1, min(FOOTER_LINES, -(-rect.height() // self.look.small_line)))
            if len(self._footer_lines) > 512:
                self._footer_lines.clear()
            self._footer_lines[key] = lines
        return max(self.button_h, lines * self.look.small_line)

    def actions(self, row: MessageRow, last_reply: bool) -> list[str]:
        names = ["copy"]
        if row.role == "user":
            names.append("edit")
        elif row.role == "assistant":
            if last_reply:
                names.append("regenerate")
            names.append("inspect")
        names.append("menu")
        return names

    def _button_width(self, name: str) -> int:
        return self._button_w[name]

    # ------------------------------------------------------------------ geometry
    def box(self, row: MessageRow, rendered: RenderedMessage, top: int, column_x: int,
            column_width: int, actions: list[str]) -> RowBox:
        look = self.look
        buttons_w = sum(self._button_width(n) + 2 for n in actions)
        compact = self.compact(row)
        if row.role == "user":
            who_w = QFontMetrics(look.bold).horizontalAdvance(row.who) + 12
            needed = max(rendered.natural_width, who_w + buttons_w)
            width = min(int(column_width * USER_SHARE), needed + 2 * PAD_X)
            x = column_x + column_width - width
        else:
            width, x = column_width, column_x
        header_h = self.header_height(row)
        footer_h = 0 if compact else self.footer_height(row, column_width)
        height = self.row_height(row, rendered.height, column_width) - ROW_GAP
        bubble = QRect(x, top, width, height)
        body_y = top + PAD_TOP + header_h + HEADER_GAP
        body = QRect(x + PAD_X, body_y, rendered.width, rendered.height)
        footer_y = body_y + rendered.height + FOOTER_GAP
        footer = QRect(x + PAD_X, footer_y, width - 2 * PAD_X, footer_h)
        box = RowBox(bubble, body, footer, stats_width=self._stats_width(row.role, column_width))
        buttons_y = top + PAD_TOP + (header_h - self.button_h) // 2 if compact else footer_y
        right = x + width - PAD_X + 6
        for name in reversed(actions):
            w = self._button_width(name)
            right -= w
            box.buttons.insert(0, (name, QRect(right, buttons_y, w, self.button_h)))
            right -= 2
        for i, part in enumerate(rendered.parts):
            if part.is_code:
                w = self.small_metrics.horizontalAdvance("Copied") + 12
                box.code_copy.append((i, QRect(body.x() + body.width() - w - 2,
                                               body_y + part.y + 2, w, look.code_header - 4)))
        return box

    # ------------------------------------------------------------------ painting
    def fill(self, row: MessageRow, palette: QPalette) -> QColor:
        base, text = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)
        if row.role == "user":
            fill = blend(base, palette.color(QPalette.ColorRole.Highlight), 0.16)
        else:
            fill = blend(base, text, 0.035)
        if row.state == "error":
            fill = blend(fill, QColor("#d1242f"), 0.12)
        return fill

    def paint(self, p: QPainter, row: MessageRow, rendered: RenderedMessage, box: RowBox, *,
              palette: QPalette, current: bool, hovered: bool, hover_hit, enabled: set[str],
              copied: tuple[int, int] | None, selections: dict[int, list]) -> None:
        """Draw one row. `selections`: part index → [(QTextCursor, strong)] find highlights;
        `copied`: (message id, part or -1) just copied (its button says "Copied")."""
        look = self.look
        text = palette.color(QPalette.ColorRole.Text)
        muted = palette.color(QPalette.ColorRole.PlaceholderText)
        fill = self.fill(row, palette)
        p.save()
        if row.dropped:
            p.setOpacity(0.45)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        edge = palette.color(QPalette.ColorRole.Highlight) if current else blend(fill, text, 0.10)
        pen_w = 1.5 if current else 1.0
        p.setPen(edge)
        pen = p.pen()
        pen.setWidthF(pen_w)
        p.setPen(pen)
        p.setBrush(fill)
        p.drawRoundedRect(QRectF(box.bubble).adjusted(0.5, 0.5, -0.5, -0.5), 12, 12)

        p.setFont(look.bold)
        p.setPen(text)
        who_w = box.bubble.width() - 2 * PAD_X
        if self.compact(row) and box.buttons:  # the actions share the header line
            who_w = box.buttons[0][1].x() - box.bubble.x() - PAD_X - 6
        p.drawText(QRect(box.bubble.x() + PAD_X, box.bubble.y() + PAD_TOP, who_w,
                         self.header_height(row)),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   QFontMetrics(look.bold).elidedText(row.who, Qt.TextElideMode.ElideRight,
                                                      who_w))

        doc_palette = QPalette(palette)
        for i, part in enumerate(rendered.parts):
            y = box.body.y() + part.y
            if part.is_code:
                self._code_chrome(p, box, i, part, y, copied == (row.message_id, i),
                                  hover_hit == ("code", i))
                doc_palette.setColor(QPalette.ColorRole.Text, look.code_text)
                origin = QPointF(box.body.x() + CODE_PAD, y + look.code_header)
            else:
                doc_palette.setColor(QPalette.ColorRole.Text, text)
                origin = QPointF(box.body.x(), y)
            self._draw_doc(p, part.doc, origin, doc_palette, selections.get(i, ()))
        if rendered.hidden_lines:
            p.setFont(look.small)
            p.setPen(muted)
            p.drawText(QRect(box.body.x(), box.body.bottom() - look.small_line, box.body.width(),
                             look.small_line), Qt.AlignmentFlag.AlignLeft,
                       f"… {rendered.hidden_lines} more lines (Copy or Select text takes them all)")

        # The footer: the stats line (wrapped when long), then the actions (on the hovered or
        # current row, in room kept for them: showing them moves nothing).
        show_buttons = hovered or current
        p.setFont(look.small)
        if row.footer:
            p.setPen(QColor("#d1242f") if row.state == "error" else muted)
            rect = QRect(box.footer.x(), box.footer.y(), box.stats_width, box.footer.height())
            if box.footer.height() <= self.button_h:
                p.drawText(rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                           self.small_metrics.elidedText(row.footer, Qt.TextElideMode.ElideRight,
                                                         box.stats_width))
            else:
                p.drawText(rect, Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap,
                           self.small_metrics.elidedText(
                               row.footer, Qt.TextElideMode.ElideRight,
                               box.stats_width * FOOTER_LINES - 2 * self.small_metrics.averageCharWidth()
                               * FOOTER_LINES))
        if show_buttons:
            for name, rect in box.buttons:
                label = "Copied" if (name == "copy" and copied == (row.message_id, -1)) \
                    else ACTION_LABELS[name]
                self._button(p, rect, label, name in enabled, hover_hit == (name, -1), fill, text)
        p.restore()

    def _button(self, p: QPainter, rect: QRect, label: str, enabled: bool, hot: bool,
                fill: QColor, text: QColor) -> None:
        if hot and enabled:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(blend(fill, text, 0.10))
            p.drawRoundedRect(QRectF(rect), 4, 4)
        p.setPen(blend(fill, text, 0.85 if enabled else 0.35))
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter, label)

    def _code_chrome(self, p: QPainter, box: RowBox, index: int, part, y: int, copied: bool,
                     hot: bool) -> None:
        look = self.look
        rect = QRectF(box.body.x(), y, box.body.width(), part.height).adjusted(0.5, 0.5, -0.5, -0.5)
        p.setPen(look.code_edge)
        p.setBrush(look.code_bg)
        p.drawRoundedRect(rect, 6, 6)
        p.setFont(look.small)
        p.setPen(blend(look.code_bg, look.code_text, 0.55))
        p.drawText(QRect(box.body.x() + CODE_PAD, y + 2, box.body.width() // 2, look.code_header - 4),
                   Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                   part.segment.lang or "code")
        copy = dict(box.code_copy).get(index)
        if copy is not None:
            self._button(p, copy, "Copied" if copied else "Copy", True, hot, look.code_bg,
                         look.code_text)

    @staticmethod
    def _draw_doc(p: QPainter, doc, origin: QPointF, palette: QPalette, selections) -> None:
        ctx = QAbstractTextDocumentLayout.PaintContext()
        ctx.palette = palette
        if selections:
            highlight = palette.color(QPalette.ColorRole.Highlight)
            chosen = []
            for cursor, strong in selections:
                sel = QAbstractTextDocumentLayout.Selection()
                sel.cursor = cursor
                fmt = QTextCharFormat()
                if strong:
                    fmt.setBackground(highlight)
                    fmt.setForeground(palette.color(QPalette.ColorRole.HighlightedText))
                else:
                    fmt.setBackground(QColor(255, 200, 0, 110))
                sel.format = fmt
                chosen.append(sel)
            ctx.selections = chosen
        p.save()
        p.translate(origin)
        clip = p.clipBoundingRect()
        if not clip.isEmpty():
            ctx.clip = clip
        doc.documentLayout().draw(p, ctx)
        p.restore()
