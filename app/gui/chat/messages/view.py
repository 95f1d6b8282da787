"""The message list: a scroll area that lays out and paints only the rows near its viewport.

Why not QListView: with rows of different heights it asks every row for its size on each
layout, and when a row above the viewport turns out taller than estimated it moves what the
reader is looking at. Here (layout.py) heights are estimated from the text and made exact when
a row is rendered; the view keeps an anchor — the top visible row and how far into it the
viewport starts, or "the end" while it sticks to the bottom — and puts the anchor back after
every change, so rows measured above the viewport never move what is on screen. Rows just
outside the viewport are rendered ahead in idle moments (a few ms at a time), so scrolling
meets rows already measured.

Mouse, keyboard and the actions are in interaction.py (`RowInteraction`); the public API
(content, streaming, find) in app/gui/chat/message_view.py.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QModelIndex, QRect, Qt, QTimer
from PySide6.QtGui import QPainter, QPalette
from PySide6.QtWidgets import QAbstractScrollArea, QFrame, QWidget

from app.gui.chat.messages.layout import RowLayout, Shape, estimate_body, shape_of
from app.gui.chat.messages.model import MessageListModel, MessageRow
from app.gui.chat.messages.painter import ROW_GAP, TOP, MessagePainter, RowBox
from app.gui.chat.messages.render import CODE_PAD, PART_GAP, Look, RenderCache, RenderedMessage

PREFETCH_BUDGET_S = 0.006   # rendering ahead takes at most this much of an event-loop turn
STICK_PX = 40               # this close to the end counts as "at the end"


class MessageListView(QAbstractScrollArea):
    """Rows of a `MessageListModel`, painted by a `MessagePainter`; see the module's doc."""

    def __init__(self, model: MessageListModel | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.viewport().setMouseTracking(True)
        self.viewport().setAutoFillBackground(False)
        self.viewport().setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setAccessibleName("Conversation")
        self.messages = model if model is not None else MessageListModel(self)
        self.cache = RenderCache()
        self.layout_ = RowLayout()
        self._shapes: dict[int, tuple[int, Shape]] = {}
        self._exact: dict[int, tuple[int, int, int]] = {}  # id → (version, column width, height)
        self._new_look()
        self._col_x, self._col_w = self.painter.column(self.viewport().width())
        self.stick = True
        self._anchor: tuple[int, int] | None = None  # (message id, px into it at the top)
        self._adjusting = False
        self.current_id: int | None = None
        self.busy = False
        self.painted: range = range(0)
        self._prefetch_timer = QTimer(self, singleShot=True, interval=0)
        self._prefetch_timer.timeout.connect(self._prefetch)
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        m = self.messages
        m.modelReset.connect(self._reset)
        m.rowsInserted.connect(self._inserted)
        m.rowsRemoved.connect(self._removed)
        m.dataChanged.connect(self._changed)
        self._reset()

    # ------------------------------------------------------------------ looks
    def _new_look(self) -> None:
        self.look = Look(self.font(), self.palette())
        self.painter = MessagePainter(self.look)

    def changeEvent(self, event) -> None:  # noqa: N802
        super().changeEvent(event)
        if getattr(self, "look", None) is None:  # still being built
            return
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.PaletteChange,
                            QEvent.Type.StyleChange):
            key = self.look.key()
            self._new_look()
            if self.look.key() != key:
                self.cache.clear()
                self._exact.clear()
                self._relayout()

    # ------------------------------------------------------------------ heights
    def _estimate(self, row: MessageRow) -> int:
        known = self._exact.get(row.message_id)
        if known is not None and known[0] == row.version and known[1] == self._col_w:
            return known[2]
        cached = self._shapes.get(row.message_id)
        if cached is None or cached[0] != row.version:
            cached = (row.version, shape_of(row.text[:60_000]))
            self._shapes[row.message_id] = cached
        look = self.look
        body = estimate_body(cached[1], self.painter.body_width(row.role, self._col_w),
                             look.char_w, look.line, look.mono_w, look.mono_line,
                             look.code_header + CODE_PAD, PART_GAP)
        return self.painter.row_height(row, body, self._col_w)

    def _is_exact(self, row: MessageRow) -> bool:
        known = self._exact.get(row.message_id)
        return known is not None and known[0] == row.version and known[1] == self._col_w

    def rendered(self, i: int) -> RenderedMessage:
        """Row i rendered at the current width (from the cache, or made now); its height
        becomes exact."""
        row = self.messages.at(i)
        item = self.cache.get(row.message_id, row.text, row.version,
                              self.painter.body_width(row.role, self._col_w), self.look,
                              row.state == "streaming")
        height = self.painter.row_height(row, item.height, self._col_w)
        self._exact[row.message_id] = (row.version, self._col_w, height)
        self.layout_.set_height(i, height, True)
        return item

    def _relayout(self) -> None:
        """Every row's height again (exact where known at this width, else estimated)."""
        rows = self.messages.rows()
        self.layout_.reset([self._estimate(r) for r in rows], [self._is_exact(r) for r in rows])
        self._settle()

    # ------------------------------------------------------------------ scrolling and anchor
    def content_height(self) -> int:
        return TOP + self.layout_.total + max(0, TOP - ROW_GAP)

    def row_top(self, i: int) -> int:
        """Row i's top in content coordinates."""
        return TOP + self.layout_.tops[i]

    def _settle(self) -> None:
        """Scroll range for the current heights, and the anchor put back in place."""
        bar = self.verticalScrollBar()
        high = max(0, self.content_height() - self.viewport().height())
        self._adjusting = True
        try:
            bar.setRange(0, high)
            bar.setPageStep(max(1, self.viewport().height()))
            bar.setSingleStep(48)
            if self.stick:
                bar.setValue(high)
            elif self._anchor is not None:
                i = self.messages.row_of(self._anchor[0])
                if i is not None:
                    bar.setValue(self.row_top(i) + self._anchor[1])
        finally:
            self._adjusting = False
        self._note_anchor()
        self.viewport().update()

    def _scrolled(self, value: int) -> None:
        if self._adjusting:
            return
        self.stick = value >= self.verticalScrollBar().maximum() - STICK_PX
        self._note_anchor()
        self._prefetch_timer.start()

    def _note_anchor(self) -> None:
        value = self.verticalScrollBar().value()
        i = self.layout_.row_at(value - TOP)
        if i < 0:
            self._anchor = None
            return
        self._anchor = (self.messages.at(i).message_id, value - self.row_top(i))

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802
        self.viewport().update()

    def _keep_in_place(self, keep: int, on_screen: int) -> None:
        """After rows changed height: the end stays shown when the view sticks to it, else row
        `keep` goes back to `on_screen` pixels below the viewport's top."""
        if self.stick:
            self._quietly_scroll_to(self.content_height())
        else:
            self._quietly_scroll_to(self.row_top(keep) - on_screen)
        self._note_anchor()

    def _quietly_scroll_to(self, value: int) -> None:
        """Move the scroll bar without a repaint request (what is painted does not move)."""
        bar = self.verticalScrollBar()
        self._adjusting = True
        blocked = bar.blockSignals(True)
        try:
            bar.setRange(0, max(0, self.content_height() - self.viewport().height()))
            bar.setValue(value)
        finally:
            bar.blockSignals(blocked)
            self._adjusting = False

    def scroll_to_end(self) -> None:
        self.stick = True
        self._settle()

    def at_end(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - STICK_PX

    def visible_rows(self) -> range:
        value = self.verticalScrollBar().value()
        return self.layout_.rows_between(value - TOP, value - TOP + self.viewport().height())

    def visible_ids(self) -> list[int]:
        return [self.messages.at(i).message_id for i in self.visible_rows()]

    def set_current(self, message_id: int, scroll: bool = True) -> None:
        """Make this message the current one (keyboard, find), scrolled to unless told not to."""
        self.current_id = message_id
        i = self.messages.row_of(message_id)
        if i is None:
            return
        row = self.messages.at(i)
        self.setAccessibleDescription(f"{row.who}: {row.text[:400]}")
        if scroll:
            self.ensure_visible(i)
        self.viewport().update()

    def ensure_visible(self, i: int, y_in_row: int | None = None) -> None:
        """Scroll so row i (or the point y_in_row of it) is in view; the least movement, or
        centred for a point."""
        self.rendered(i)
        self._settle()  # its exact height known, what is on screen put back first
        bar = self.verticalScrollBar()
        top, height = self.row_top(i), self.layout_.heights[i] - ROW_GAP
        view_h = self.viewport().height()
        if y_in_row is not None:
            value = top + y_in_row - view_h // 2
        elif top < bar.value() or height > view_h:
            value = top - 8
        elif top + height > bar.value() + view_h:
            value = top + height - view_h + 8
        else:
            return
        self.stick = False
        bar.setRange(0, max(0, self.content_height() - view_h))
        bar.setValue(max(0, min(bar.maximum(), value)))
        self.stick = bar.value() >= bar.maximum() - STICK_PX and i == len(self.messages) - 1
        self._note_anchor()
        self.viewport().update()

    # ------------------------------------------------------------------ measuring what is seen
    def _measure_visible(self) -> None:
        """Render the visible rows not measured yet, keeping the first already measured one
        (else the top one) where it is on screen: nothing the reader saw moves."""
        bar = self.verticalScrollBar()
        for _ in range(6):
            rows = self.visible_rows()
            todo = [i for i in rows if not self.layout_.measured[i]]
            if not todo:
                return
            keep = next((i for i in rows if self.layout_.measured[i]), rows[0])
            on_screen = self.row_top(keep) - bar.value()
            for i in todo:
                self.rendered(i)
            self._keep_in_place(keep, on_screen)

    def _prefetch(self) -> None:
        """Render rows just above and below the viewport (one screen each way), a few ms per
        turn of the event loop; the visible rows stay where they are."""
        if not len(self.messages):
            return
        bar = self.verticalScrollBar()
        value, view_h = bar.value(), self.viewport().height()
        rows = self.layout_.rows_between(value - TOP - view_h, value - TOP + 2 * view_h)
        visible = self.visible_rows()
        todo = [i for i in rows if not self.layout_.measured[i]]
        if not todo or not len(visible):
            return
        keep = visible[0]
        on_screen = self.row_top(keep) - value
        # nearest the viewport first: below, then above
        todo.sort(key=lambda i: abs(i - keep))
        deadline = time.perf_counter() + PREFETCH_BUDGET_S
        done = 0
        for i in todo:
            self.rendered(i)
            done += 1
            if time.perf_counter() > deadline:
                break
        self._keep_in_place(keep, on_screen)
        if done < len(todo):
            self._prefetch_timer.start()

    # ------------------------------------------------------------------ model signals
    def _reset(self) -> None:
        # New rows start at version 0 again: nothing known of the old ones may be reused.
        self._shapes.clear()
        self._exact.clear()
        self.cache.clear()
        self.stick, self._anchor = True, None
        self._relayout()
        self.painted = range(0)

    def _inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        if first != len(self.layout_):  # not at the end: lay everything out again
            return self._relayout()
        for i in range(first, last + 1):
            row = self.messages.at(i)
            self.layout_.append(self._estimate(row), self._is_exact(row))
        self._settle()

    def _removed(self, _parent: QModelIndex, first: int, last: int) -> None:
        if last + 1 != len(self.layout_):
            return self._relayout()
        gone = set(self._exact) - {r.message_id for r in self.messages.rows()}
        for mid in gone:
            self.cache.drop(mid)
            self._exact.pop(mid, None)
            self._shapes.pop(mid, None)
        self.layout_.truncate(first)
        if self.current_id in gone:
            self.current_id = None
        self._settle()

    def _changed(self, top_left: QModelIndex, bottom_right: QModelIndex, _roles=()) -> None:
        first, last = top_left.row(), bottom_right.row()
        def where() -> tuple:
            return (self.verticalScrollBar().value(), self.content_height(),
                    tuple(self.layout_.heights[first:last + 1]))

        before = where()
        for i in range(first, last + 1):
            row = self.messages.at(i)
            if self.cache.peek(row.message_id) is not None:
                self.rendered(i)  # rendered already (it is in view): update it now
            else:
                self.layout_.set_height(i, self._estimate(row), self._is_exact(row))
        if where() == before:
            # Nothing moved (a streamed piece that did not start a new line): repaint those rows
            # alone. A reply streams ~15 updates a second; painting the whole viewport each time
            # took CPU from the model decoding on the same cores.
            value = before[0]
            top = self.row_top(first) - value
            bottom = self.row_top(last) - value + self.layout_.heights[last]
            self.viewport().update(0, top, self.viewport().width(), bottom - top)
            return
        self._settle()

    # ------------------------------------------------------------------ painting
    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        x, w = self.painter.column(self.viewport().width())
        if (x, w) != (self._col_x, self._col_w):
            self._col_x, self._col_w = x, w
            self._relayout()
        else:
            self._settle()

    def box(self, i: int, rendered: RenderedMessage | None = None) -> RowBox:
        """Row i's geometry in viewport coordinates."""
        row = self.messages.at(i)
        rendered = rendered or self.rendered(i)
        top = self.row_top(i) - self.verticalScrollBar().value()
        return self.painter.box(row, rendered, top, self._col_x, self._col_w,
                                self.painter.actions(row, row.message_id == self.last_reply_id()))

    def last_reply_id(self) -> int | None:
        rows = self.messages.rows()
        return next((r.message_id for r in reversed(rows) if r.role == "assistant"), None)

    def enabled_actions(self, row: MessageRow) -> set[str]:
        names = {"copy", "inspect", "menu"}
        if not self.busy:
            names |= {"edit", "regenerate"}
        return names

    def row_state(self, row: MessageRow) -> dict:
        """What the interaction adds to a row's painting (hover, copied, find highlights)."""
        return {"hovered": False, "hover_hit": None, "copied": None, "selections": {}}

    def paintEvent(self, event) -> None:  # noqa: N802
        self._measure_visible()
        p = QPainter(self.viewport())
        pal = self.palette()
        p.fillRect(event.rect(), pal.color(QPalette.ColorRole.Base))
        view = QRect(event.rect())
        rows = self.visible_rows()
        for i in rows:
            row = self.messages.at(i)
            rendered = self.rendered(i)
            box = self.box(i, rendered)
            if not box.bubble.intersects(view):
                continue
            state = self.row_state(row)
            self.painter.paint(p, row, rendered, box, palette=pal,
                               current=(row.message_id == self.current_id and self.hasFocus()),
                               enabled=self.enabled_actions(row), **state)
        p.end()
        self.painted = rows
        self._prefetch_timer.start()
