"""The side list of conversations: search, New chat, and per-conversation actions. A view of
the chat session: it lists the session's conversations and calls its methods (an export asks
the screen where, so `exportRequested` is its one signal for the screen)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QFont, QPalette
from PySide6.QtWidgets import (QInputDialog, QLineEdit, QListWidget, QListWidgetItem, QMenu,
                               QMessageBox, QPushButton, QStyle, QStyledItemDelegate,
                               QStyleOptionViewItem, QVBoxLayout, QWidget)

if TYPE_CHECKING:
    from app.gui.chat.session import ChatSession

ID_ROLE = Qt.ItemDataRole.UserRole
DETAIL_ROLE = Qt.ItemDataRole.UserRole + 1


def ago(when: float, now: float | None = None) -> str:
    seconds = max(0, (now or time.time()) - when)
    if seconds < 60:
        return "just now"
    for size, unit in ((86400 * 7, "w"), (86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return ""


class _Delegate(QStyledItemDelegate):
    """Two lines: the title, and a muted line with the model and when it was last used."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        fm = option.fontMetrics
        return QSize(200, fm.lineSpacing() * 2 + 14)

    def paint(self, painter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget else None
        if style:
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter,
                                opt.widget)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        pal = option.palette
        rect = option.rect.adjusted(10, 6, -8, -6)
        fm = option.fontMetrics
        painter.save()
        title_font = QFont(option.font)
        title_font.setWeight(title_font.Weight.DemiBold)
        painter.setFont(title_font)
        painter.setPen(pal.color(QPalette.ColorRole.HighlightedText if selected
                                 else QPalette.ColorRole.Text))
        title = index.data(Qt.ItemDataRole.DisplayRole) or ""
        top = QRect(rect.left(), rect.top(), rect.width(), fm.lineSpacing())
        painter.drawText(top, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         painter.fontMetrics().elidedText(title, Qt.TextElideMode.ElideRight,
                                                          rect.width()))
        painter.setFont(option.font)
        painter.setPen(pal.color(QPalette.ColorRole.HighlightedText if selected
                                 else QPalette.ColorRole.PlaceholderText))
        bottom = QRect(rect.left(), rect.top() + fm.lineSpacing() + 2, rect.width(),
                       fm.lineSpacing())
        detail = index.data(DETAIL_ROLE) or ""
        painter.drawText(bottom, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         fm.elidedText(detail, Qt.TextElideMode.ElideRight, rect.width()))
        painter.restore()


class ConversationList(QWidget):
    conversationActivated = Signal(int)
    newRequested = Signal()
    renameRequested = Signal(int, str)
    deleteRequested = Signal(int)
    exportRequested = Signal(int)
    searchChanged = Signal(str)

    def __init__(self, session: "ChatSession", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        lay = QVBoxLayout(self)
        lay.setContentsMargins(8, 10, 4, 8)
        lay.setSpacing(8)
        self.new_button = QPushButton("New chat")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.clicked.connect(self.newRequested)
        lay.addWidget(self.new_button)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search chats (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        lay.addWidget(self.search)
        self._debounce = QTimer(self, singleShot=True, interval=200)
        self._debounce.timeout.connect(lambda: self.searchChanged.emit(self.search.text()))
        self.search.textChanged.connect(lambda _t: self._debounce.start())
        self.list = QListWidget()
        self.list.setItemDelegate(_Delegate(self.list))
        self.list.setFrameShape(QListWidget.Shape.NoFrame)
        self.list.setUniformItemSizes(True)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.currentItemChanged.connect(self._current)
        self.list.itemDoubleClicked.connect(
            lambda item: self.ask_rename(item.data(ID_ROLE), item.text()))
        self.list.setBackgroundRole(QPalette.ColorRole.Window)
        lay.addWidget(self.list, 1)
        self._quiet = False
        self.conversationActivated.connect(session.open)
        self.newRequested.connect(lambda: session.new_chat())
        self.renameRequested.connect(session.rename)
        self.deleteRequested.connect(session.delete)
        self.searchChanged.connect(lambda _query: self.refresh())
        session.listChanged.connect(self.refresh)

    def refresh(self) -> None:
        """List the session's conversations (those matching the search, when there is one)."""
        s = self.session
        self.set_conversations(s.conversations(self.search.text()), s.conv.id if s.conv else None)

    def set_conversations(self, conversations: list, current: int | None) -> None:
        self._quiet = True
        self.list.clear()
        now = time.time()
        for conv in conversations:
            item = QListWidgetItem(conv.title)
            item.setData(ID_ROLE, conv.id)
            mode = " · completion" if conv.mode == "completion" else ""
            item.setData(DETAIL_ROLE, f"{conv.model_id or 'no model'}{mode} · {ago(conv.updated, now)}")
            item.setToolTip(conv.title)
            self.list.addItem(item)
            if conv.id == current:
                self.list.setCurrentItem(item)
        self._quiet = False

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return item.data(ID_ROLE) if item else None

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _current(self, item: QListWidgetItem | None, _previous) -> None:
        if item is not None and not self._quiet:
            self.conversationActivated.emit(item.data(ID_ROLE))

    def _menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        cid, title = item.data(ID_ROLE), item.text()
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self.ask_rename(cid, title))
        menu.addAction("Export…", lambda: self.exportRequested.emit(cid))
        menu.addSeparator()
        delete = QAction("Delete…", menu)
        delete.triggered.connect(lambda: self.confirm_delete(cid, title))
        menu.addAction(delete)
        menu.exec(self.list.viewport().mapToGlobal(pos))

    def ask_rename(self, cid: int, title: str) -> None:
        text, ok = QInputDialog.getText(self, "Rename conversation", "Title:", text=title)
        if ok and text.strip():
            self.renameRequested.emit(cid, text.strip())

    def confirm_delete(self, cid: int, title: str) -> None:
        answer = QMessageBox.question(
            self, "Delete conversation",
            f"Delete “{title}” and all its messages? This cannot be undone.",
            QMessageBox.StandardButton.Delete | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Delete:
            self.deleteRequested.emit(cid)
