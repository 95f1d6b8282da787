"""The Library's "Catalog" tab: the curated models as a sortable, searchable table, and the
selected entry's card below it (description, quantisation, memory fit, Download or Chat)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from app.core.memory_plan import format_bytes
from app.gui.library.cards import CatalogCard
from app.gui.library.installed import FIT_WORDS
from app.gui.library.state import CatalogItem
from app.gui.library.table import Column, TableTab


def _default_plan(item: CatalogItem):
    f = item.entry.file_for()
    return item.plans.get(f.quant) if f is not None else None


def _memory(item: CatalogItem) -> str:
    plan = _default_plan(item)
    if plan is None:
        return ""
    return f"{FIT_WORDS.get(plan.verdict, ('unknown', None))[0]} · {format_bytes(plan.total)}"


def _memory_color(item: CatalogItem) -> str | None:
    plan = _default_plan(item)
    return FIT_WORDS.get(plan.verdict, ("", None))[1] if plan is not None else None


def _state(item: CatalogItem) -> str:
    if not item.entry.available:
        return "No GGUF file"
    return "Installed" if item.installed else ""


COLUMNS = [
    Column("Name", lambda i: i.entry.name, tip=lambda i: i.entry.description),
    Column("Params", lambda i: i.entry.parameters, key=lambda i: i.entry.parameters_b, chars=7, right=True),
    Column("Family", lambda i: i.entry.family, chars=12),
    Column("License", lambda i: i.entry.license, chars=14, tip=lambda i: i.entry.license),
    Column("Size", lambda i: format_bytes(i.entry.size) if i.entry.size else "",
           key=lambda i: i.entry.size, chars=9, right=True),
    Column("Memory", _memory, key=lambda i: getattr(_default_plan(i), "total", None), chars=17,
           color=_memory_color),
    Column("", _state, chars=12,
           color=lambda i: "bad" if not i.entry.available else "ok" if i.installed else None),
]


class CatalogTab(TableTab):
    downloadClicked = Signal(object, object)   # CatalogEntry, CatalogFile
    chatClicked = Signal(str)                   # library id
    alternativeClicked = Signal(str)            # catalog id

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(COLUMNS, name=lambda i: i.entry.name, key=lambda i: i.entry.id,
                         object_name="CatalogTable", parent=parent,
                         intro="Curated LLaMA-family models, checked against the Hugging Face hub. "
                               "Memory estimates are for this computer.")

    def select(self, entry_id: str) -> bool:
        return self.table.select(lambda item: item.entry.id == entry_id)

    def make_card(self, item: CatalogItem) -> QWidget:
        card = CatalogCard(item)
        card.downloadClicked.connect(self.downloadClicked)
        card.chatClicked.connect(self.chatClicked)
        card.alternativeClicked.connect(self.alternativeClicked)
        return card
