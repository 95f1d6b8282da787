"""What the reader does with the message list: hover and click the drawn actions, move between
messages with the keyboard, open a message's menu, copy and select text (find is find.py's).

The actions are painted (painter.py) and hit-tested here against the same boxes. Selecting
part of a message: double-click it (or "Select text" in its menu, Enter then S by keyboard)
and a read-only, selectable text view of that one message opens over it; Esc or leaving it
closes it. Only that one widget is ever made, whatever the chat's length.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QKeySequence, QPalette
from PySide6.QtWidgets import QFrame, QMenu, QTextBrowser, QToolTip, QWidget

from app.gui.chat.messages.find import FindableListView
from app.gui.chat.messages.model import MessageListModel, MessageRow
from app.gui.chat.messages.painter import ACTION_TIPS, TOP, RowBox
from app.gui.chat.messages.render import MAX_SHOWN_CHARS
from app.gui.chat.segments import split_markdown

COPIED_MS = 1500


class TextSelector(QTextBrowser):
    """One message as selectable text, laid over its row; closes on Esc or losing focus."""

    closed = Signal()

    def __init__(self, row: MessageRow, parent: QWidget) -> None:
        super().__init__(parent)
        self.message_id = row.message_id
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setOpenExternalLinks(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction
                                     | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.document().setDocumentMargin(4)
        if len(row.text) > MAX_SHOWN_CHARS:  # a huge paste: all of it, as text
            self.setPlainText(row.text)
        else:
            self.setMarkdown(row.text)
        self.setToolTip("Select with the mouse or Shift+arrows; Ctrl+C copies; Esc closes")

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape:
            self.close_selector()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event) -> None:  # noqa: N802
        super().focusOutEvent(event)
        if event.reason() != Qt.FocusReason.PopupFocusReason:  # its own context menu
            QTimer.singleShot(0, self, self.close_selector)

    def close_selector(self) -> None:
        if self.isVisible():
            self.hide()
            self.closed.emit()


class InteractiveListView(FindableListView):
    """The list with its actions. Signals carry message ids; copying is done here."""

    editRequested = Signal(int)
    regenerateRequested = Signal(int)
    inspectRequested = Signal(int)
    branchRequested = Signal(int, int)   # reserved for branch arrows: (message id, -1 | +1)
    copied = Signal(str)                 # "message" | "code": for a status line

    def __init__(self, model: MessageListModel | None = None,
                 parent: QWidget | None = None) -> None:
        self._hover: tuple[int, tuple | None] | None = None
        self._copied: tuple[int, int] | None = None
        self.selector: TextSelector | None = None
        super().__init__(model, parent)
        self._copied_timer = QTimer(self, singleShot=True, interval=COPIED_MS)
        self._copied_timer.timeout.connect(self._uncopy)

    # ------------------------------------------------------------------ hit-testing
    def row_at(self, pos: QPoint) -> int | None:
        if not len(self.messages):
            return None
        i = self.layout_.row_at(self.verticalScrollBar().value() + pos.y() - TOP)
        return i if self.box(i).bubble.contains(pos) else None

    def _hit(self, pos: QPoint) -> tuple[int, RowBox, tuple | None] | None:
        i = self.row_at(pos)
        if i is None:
            return None
        box = self.box(i)
        return i, box, box.hit(pos)

    def _link_at(self, i: int, box: RowBox, pos: QPoint) -> str:
        rendered = self.rendered(i)
        for part in rendered.parts:
            if part.is_code:
                continue
            local = pos - box.body.topLeft() - QPoint(0, part.y)
            anchor = part.doc.documentLayout().anchorAt(local.toPointF())
            if anchor:
                return anchor
        return ""

    # ------------------------------------------------------------------ mouse
    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        hit = self._hit(event.position().toPoint())
        hover = None if hit is None else (self.messages.at(hit[0]).message_id, hit[2])
        if hover != self._hover:
            self._hover = hover
            self.viewport().update()
        pointing = hit is not None and (hit[2] is not None
                                        or bool(self._link_at(hit[0], hit[1],
                                                              event.position().toPoint())))
        self.viewport().setCursor(Qt.CursorShape.PointingHandCursor if pointing
                                  else Qt.CursorShape.ArrowCursor)
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802
        if self._hover is not None:
            self._hover = None
            self.viewport().update()
        super().leaveEvent(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802
        hit = self._hit(event.position().toPoint())
        if hit is None or event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        i, box, what = hit
        row = self.messages.at(i)
        self.set_current(row.message_id, scroll=False)
        if what is not None:
            name, part = what
            if name == "code":
                self.copy_code(row.message_id, part)
            elif name == "menu":
                self.open_menu(row.message_id, box.buttons[-1][1].bottomLeft())
            else:
                self.trigger(row.message_id, name)
            return
        link = self._link_at(i, box, event.position().toPoint())
        if link and QUrl(link).scheme() in ("http", "https"):
            QDesktopServices.openUrl(QUrl(link))

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        hit = self._hit(event.position().toPoint())
        if hit is not None and hit[2] is None and hit[1].body.contains(event.position().toPoint()):
            self.select_text(self.messages.at(hit[0]).message_id)

    def viewportEvent(self, event) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.ToolTip:
            hit = self._hit(event.pos())
            tip = ""
            if hit is not None:
                i, box, what = hit
                row = self.messages.at(i)
                if what is not None:
                    tip = "Copy this code" if what[0] == "code" else ACTION_TIPS[what[0]]
                elif row.dropped:
                    tip = "Not sent to the model: it no longer fits in the context"
                elif box.footer.contains(event.pos()):
                    tip = row.details
                else:
                    tip = self._link_at(i, box, event.pos())
            if tip:
                QToolTip.showText(event.globalPos(), tip, self.viewport())
            else:
                QToolTip.hideText()
            return True
        return super().viewportEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802
        if event.reason() == event.Reason.Mouse:
            i = self.row_at(event.pos())
            if i is None:
                return
            mid = self.messages.at(i).message_id
            self.set_current(mid, scroll=False)
            self.open_menu(mid, event.pos())
        elif self.current_id is not None:
            self._menu_for_current()

    # ------------------------------------------------------------------ keyboard
    def keyPressEvent(self, event) -> None:  # noqa: N802
        key, n = event.key(), len(self.messages)
        if event.matches(QKeySequence.StandardKey.Copy) and self.current_id is not None:
            self.trigger(self.current_id, "copy")
        elif key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and n:
            i = self.messages.row_of(self.current_id) if self.current_id is not None else None
            if i is None:
                rows = self.visible_rows()
                i = rows[-1] if key == Qt.Key.Key_Up and len(rows) else (rows[0] if len(rows) else 0)
            else:
                i = max(0, min(n - 1, i + (-1 if key == Qt.Key.Key_Up else 1)))
            self.set_current(self.messages.at(i).message_id)
        elif key in (Qt.Key.Key_Home, Qt.Key.Key_End) and n:
            i = 0 if key == Qt.Key.Key_Home else n - 1
            self.set_current(self.messages.at(i).message_id)
            if key == Qt.Key.Key_End:
                self.scroll_to_end()
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Menu) \
                and self.current_id is not None:
            self._menu_for_current()
        else:
            super().keyPressEvent(event)  # PageUp / PageDown scroll

    def focusInEvent(self, event) -> None:  # noqa: N802
        super().focusInEvent(event)
        if self.current_id is None and len(self.messages):
            rows = self.visible_rows()
            if len(rows):
                self.current_id = self.messages.at(rows[-1]).message_id
        self.viewport().update()

    def focusOutEvent(self, event) -> None:  # noqa: N802
        super().focusOutEvent(event)
        self.viewport().update()

    def _menu_for_current(self) -> None:
        i = self.messages.row_of(self.current_id)
        if i is None:
            return
        self.ensure_visible(i)
        box = self.box(i)
        self.open_menu(self.current_id, box.footer.topLeft() if box.footer.bottom() <
                       self.viewport().height() else box.bubble.topLeft() + QPoint(16, 16))

    # ------------------------------------------------------------------ actions
    def trigger(self, message_id: int, name: str) -> None:
        """Run a row's action by name: copy, edit, regenerate, inspect, select, menu."""
        row = self.messages.get(message_id)
        if row is None:
            return
        if name == "copy":
            QGuiApplication.clipboard().setText(row.text)
            self._flash_copied(message_id, -1)
            self.copied.emit("message")
        elif name == "edit" and not self.busy and row.role == "user":
            self.editRequested.emit(message_id)
        elif name == "regenerate" and not self.busy and message_id == self.last_reply_id():
            self.regenerateRequested.emit(message_id)
        elif name == "inspect" and row.role == "assistant":
            self.inspectRequested.emit(message_id)
        elif name == "select":
            self.select_text(message_id)
        elif name == "menu":
            self.set_current(message_id)
            self._menu_for_current()

    def code_blocks(self, message_id: int) -> list[str]:
        """The message's fenced code blocks, whole (from the text, not the rendered part)."""
        row = self.messages.get(message_id)
        return [] if row is None else [s.text for s in split_markdown(row.text) if s.kind == "code"]

    def copy_code(self, message_id: int, part: int) -> None:
        """Copy the code block drawn as `part` of the rendered message (its ordinal among the
        code blocks picks the whole block from the message's text)."""
        rendered = self.cache.peek(message_id)
        blocks = self.code_blocks(message_id)
        if rendered is None or not blocks:
            return
        ordinal = sum(1 for p in rendered.parts[:part] if p.is_code)
        if ordinal < len(blocks):
            QGuiApplication.clipboard().setText(blocks[ordinal])
            self._flash_copied(message_id, part)
            self.copied.emit("code")

    def _flash_copied(self, message_id: int, part: int) -> None:
        self._copied = (message_id, part)
        self._copied_timer.start()
        self.viewport().update()

    def _uncopy(self) -> None:
        self._copied = None
        self.viewport().update()

    def open_menu(self, message_id: int, at: QPoint) -> None:
        row = self.messages.get(message_id)
        if row is None:
            return
        menu = QMenu(self)
        menu.addAction("&Copy message", lambda: self.trigger(message_id, "copy"))
        for n, _code in enumerate(self.code_blocks(message_id)):
            menu.addAction(f"Copy code block &{n + 1}" if n < 9 else f"Copy code block {n + 1}",
                           lambda n=n: self._copy_block(message_id, n))
        menu.addAction("&Select text…", lambda: self.select_text(message_id))
        if row.role == "user":
            menu.addAction("&Edit and send again",
                           lambda: self.trigger(message_id, "edit")).setEnabled(not self.busy)
        if row.role == "assistant":
            if message_id == self.last_reply_id():
                menu.addAction("&Regenerate", lambda: self.trigger(message_id, "regenerate")
                               ).setEnabled(not self.busy)
            menu.addAction("Show the &prompt", lambda: self.trigger(message_id, "inspect"))
        menu.popup(self.viewport().mapToGlobal(at))
        self._menu = menu  # kept for tests and so it is not collected while shown

    def _copy_block(self, message_id: int, n: int) -> None:
        blocks = self.code_blocks(message_id)
        if n < len(blocks):
            QGuiApplication.clipboard().setText(blocks[n])
            self.copied.emit("code")

    # ------------------------------------------------------------------ selecting text
    def select_text(self, message_id: int) -> None:
        i = self.messages.row_of(message_id)
        if i is None:
            return
        self.close_selector()
        self.set_current(message_id)
        selector = TextSelector(self.messages.at(i), self.viewport())
        pal = selector.palette()
        pal.setColor(QPalette.ColorRole.Base, self.painter.fill(self.messages.at(i), self.palette()))
        selector.setPalette(pal)
        selector.closed.connect(self.close_selector)
        self.selector = selector
        self._place_selector()
        selector.show()
        selector.setFocus(Qt.FocusReason.OtherFocusReason)

    def close_selector(self) -> None:
        selector, self.selector = self.selector, None
        if selector is not None:
            had_focus = selector.hasFocus()
            selector.hide()
            selector.deleteLater()
            if had_focus:
                self.setFocus(Qt.FocusReason.OtherFocusReason)

    def _place_selector(self) -> None:
        if self.selector is None:
            return
        i = self.messages.row_of(self.selector.message_id)
        if i is None:
            return self.close_selector()
        box = self.box(i)
        rect = box.body.adjusted(-4, -4, 4, 4)
        view = self.viewport().rect()
        if not rect.intersects(view):
            return self.close_selector()
        self.selector.setGeometry(rect.intersected(view.adjusted(0, 0, 0, 0)))

    # ------------------------------------------------------------------ painting state
    def row_state(self, row: MessageRow) -> dict:
        hovered = self._hover is not None and self._hover[0] == row.message_id
        selections = self.find_selections(row)
        return {"hovered": hovered, "hover_hit": self._hover[1] if hovered else None,
                "copied": self._copied, "selections": selections}

    def scrollContentsBy(self, dx: int, dy: int) -> None:  # noqa: N802
        super().scrollContentsBy(dx, dy)
        self._place_selector()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._place_selector()
