"""The Library's "Installed" tab: the models in the library as a sortable, searchable table, and
the selected model's card (its facts, "Chat with this model", Delete) below it.

Enter or a double-click on a row chats with that model; the Delete key asks to delete it.
"""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QFrame, QVBoxLayout, QWidget

from app.core.memory_plan import FITS, TIGHT, WILL_NOT_FIT, format_bytes
from app.gui.library.cards import InstalledCard
from app.gui.library.state import InstalledItem
from app.gui.library.table import Column, TableTab
from app.gui.widgets import label

FIT_WORDS = {FITS: ("Fits", "ok"), TIGHT: ("Tight fit", "warn"), WILL_NOT_FIT: ("Too big", "bad")}


def _memory(item: InstalledItem) -> str:
    m = item.model
    if not m.ok:
        return "File missing" if m.status == "missing" else "Cannot be used"
    if item.plan is None:
        return "unknown"
    words, _ = FIT_WORDS.get(item.plan.verdict, ("unknown", None))
    return f"{words} · {format_bytes(item.plan.total)}"


def _memory_color(item: InstalledItem) -> str | None:
    if not item.model.ok:
        return "bad"
    return FIT_WORDS.get(item.plan.verdict, ("", None))[1] if item.plan is not None else None


def _memory_tip(item: InstalledItem) -> str | None:
    if not item.model.ok:
        return item.model.error
    plan = item.plan
    return None if plan is None else f"{plan.text()}\n{plan.breakdown()}" + "".join(f"\n{n}" for n in plan.notes)


COLUMNS = [
    Column("Name", lambda i: i.model.id, tip=lambda i: str(i.model.path)),
    Column("Params", lambda i: i.model.parameters_label or "",
           key=lambda i: i.model.header.parameters if i.model.header else None, chars=8, right=True),
    Column("Quant", lambda i: i.model.quantization or "", chars=8),
    Column("Family", lambda i: i.family, chars=12),
    Column("Size", lambda i: format_bytes(i.model.size) if i.model.size else "",
           key=lambda i: i.model.size, chars=9, right=True),
    Column("Memory", _memory, key=lambda i: i.plan.total if i.plan else None, chars=17,
           color=_memory_color, tip=_memory_tip),
    Column("Date", lambda i: f"{datetime.fromtimestamp(i.date):%Y-%m-%d}" if i.date else "",
           key=lambda i: i.date, chars=11, right=True,
           tip=lambda i: f"File dated {datetime.fromtimestamp(i.date):%Y-%m-%d %H:%M}" if i.date else None),
]


class InstalledTab(TableTab):
    chatRequested = Signal(object)     # InstalledItem
    deleteRequested = Signal(object)   # InstalledItem

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(COLUMNS, name=lambda i: i.model.id, key=lambda i: i.model.id,
                         object_name="InstalledTable", parent=parent)
        self.empty = self._empty_state()
        self.lay.insertWidget(0, self.empty)
        self.nothing = label("", role="muted")
        self.nothing.hide()
        self.lay.insertWidget(2, self.nothing)
        self.table.activatedItem.connect(self._chat)
        delete = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.table)
        delete.setContext(Qt.ShortcutContext.WidgetShortcut)
        delete.activated.connect(self._delete_current)
        self.count = 0

    def _empty_state(self) -> QWidget:
        box = QFrame()
        box.setObjectName("DropHint")
        lay = QVBoxLayout(box)
        lay.setContentsMargins(24, 28, 24, 28)
        lay.setSpacing(8)
        lay.addWidget(label("No models yet", role="h2"), 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(label("Drop a .gguf file here, use “Import a GGUF file…”, download one from "
                            "the Catalog, or use a model another app already downloaded.",
                            wrap=True), 0, Qt.AlignmentFlag.AlignHCenter)
        box.hide()
        return box

    def set_items(self, items: list[InstalledItem]) -> None:
        self.count = len(items)
        self.empty.setVisible(not items)
        self.table.setVisible(bool(items))
        super().set_items(items)
        self._say_nothing()

    def set_query(self, text: str) -> None:
        super().set_query(text)
        self._say_nothing()

    def _say_nothing(self) -> None:
        hidden = bool(self.count) and not self.table.proxy.rowCount()
        self.nothing.setText(f"None of your {self.count} models matches “{self.table.proxy.query}”."
                             if hidden else "")
        self.nothing.setVisible(hidden)

    def select(self, model_id: str) -> bool:
        return self.table.select(lambda item: item.model.id == model_id)

    def make_card(self, item: InstalledItem) -> QWidget:
        card = InstalledCard(item)
        card.chatClicked.connect(self._chat)
        card.deleteClicked.connect(self.deleteRequested)
        return card

    def _delete_current(self) -> None:
        item = self.table.current()
        if item is not None:
            self.deleteRequested.emit(item)

    def _chat(self, item: InstalledItem | None) -> None:
        if item is not None and item.model.ok:
            self.chatRequested.emit(item)
