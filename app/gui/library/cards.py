"""The library screen's cards: an installed model, a catalog entry, a hub repository, a model
found in another app. Layout only: each card emits what was clicked; the screen acts."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFrame, QHBoxLayout, QPushButton, QVBoxLayout,
                               QWidget)

from app.core.memory_plan import FITS, TIGHT, WILL_NOT_FIT, MemoryPlan, format_bytes
from app.gui.library.state import CatalogItem, InstalledItem
from app.gui.widgets import badge, label

VERDICT = {FITS: ("ok", "Fits in memory"), TIGHT: ("warn", "Tight fit"),
           WILL_NOT_FIT: ("bad", "Too big for this machine")}


def memory_badge(plan: MemoryPlan | None):
    if plan is None:
        return badge("Memory: unknown", "neutral")
    kind, text = VERDICT.get(plan.verdict, ("neutral", "Memory: unknown"))
    return badge(f"{text} · {format_bytes(plan.total)}", kind,
                 tooltip=f"{plan.text()}\n{plan.breakdown()}" + "".join(f"\n{n}" for n in plan.notes))


def count(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 1000:
        return f"{n / 1e3:.1f}k"
    return str(n)


class Card(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setProperty("card", True)
        self.body = QVBoxLayout(self)
        self.body.setContentsMargins(16, 14, 16, 14)
        self.body.setSpacing(6)

    def title_row(self, title: str, *badges) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(6)
        head = label(title, role="cardtitle")
        head.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row.addWidget(head)
        for b in badges:
            if b is not None:
                row.addWidget(b)
        row.addStretch(1)
        self.body.addLayout(row)
        return row

    def button(self, text: str, *, primary: bool = False, danger: bool = False,
               name: str | None = None) -> QPushButton:
        b = QPushButton(text)
        b.setCursor(Qt.CursorShape.PointingHandCursor)
        if primary:
            b.setProperty("primary", True)
        if danger:
            b.setProperty("danger", True)
        if name:
            b.setObjectName(name)
        return b


class InstalledCard(Card):
    chatClicked = Signal(object)    # InstalledItem
    deleteClicked = Signal(object)

    def __init__(self, item: InstalledItem, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.item = item
        m = item.model
        self.setObjectName(f"model-{m.id}")
        h = m.header
        if h is not None:
            self.title_row(m.id)
            tags = QHBoxLayout()
            tags.setSpacing(6)
            for b in (badge(h.parameters_label, "accent") if h.parameters_label else None,
                      badge(h.quantization, "neutral") if h.quantization else None,
                      memory_badge(item.plan)):
                if b is not None:
                    tags.addWidget(b)
            tags.addStretch(1)
            self.body.addLayout(tags)
            facts = [f"{h.architecture or 'unknown'} architecture", format_bytes(m.size)]
            if h.context_length:
                facts.append(f"{h.context_length:,} tokens of context")
            if item.template:
                where = {"catalog": "from the catalog", "setting": "your choice"}.get(item.template_source, "")
                facts.append(f"template {item.template}" + (f" ({where})" if where else ""))
            else:
                facts.append("template detected from the file" if h.chat_template else "template: auto")
            self.body.addWidget(label("  ·  ".join(facts), wrap=True))
        else:
            invalid = "File missing" if m.status == "missing" else "Cannot be used"
            self.title_row(m.id, badge(invalid, "bad"))
            self.setProperty("invalid", True)
            self.body.addWidget(label(m.error or "unreadable", role="error", wrap=True, selectable=True))
        where = str(m.path)
        if m.kind == "linked":
            origin = {"lm-studio": "LM Studio", "gpt4all": "GPT4All", "ollama": "Ollama",
                      "huggingface": "the Hugging Face cache"}.get(m.origin or "", None)
            where = f"Used in place{f' from {origin}' if origin else ''}: {m.path}"
        path = label(where, role="muted", wrap=True, selectable=True)
        self.body.addWidget(path)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        delete = self.button("Forget" if m.kind == "linked" else "Delete", danger=True, name="delete-button")
        delete.setToolTip("Remove from the library (the file stays where it is)" if m.kind == "linked"
                          else "Delete the file from the models folder")
        delete.clicked.connect(lambda: self.deleteClicked.emit(self.item))
        buttons.addWidget(delete)
        if m.ok:
            chat = self.button("Chat with this model", primary=True, name="chat-button")
            chat.clicked.connect(lambda: self.chatClicked.emit(self.item))
            buttons.addWidget(chat)
        self.body.addLayout(buttons)


class CatalogCard(Card):
    downloadClicked = Signal(object, object)   # CatalogEntry, CatalogFile
    chatClicked = Signal(str)                   # library id
    alternativeClicked = Signal(str)            # catalog id

    def __init__(self, item: CatalogItem, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.item = item
        e = item.entry
        self.setObjectName(f"catalog-{e.id}")
        gated = badge("Gated", "warn", "The hub asks you to accept a license: add your Hugging Face "
                      "token in Settings") if e.gated else None
        self.title_row(e.name, badge(e.parameters, "accent"), gated)
        self.body.addWidget(label(e.description, role="muted", wrap=True))
        facts = [f"family {e.family}", f"license {e.license}", f"template {e.template}"]
        if e.context_length:
            facts.append(f"{e.context_length:,} tokens of context")
        self.body.addWidget(label("  ·  ".join(facts), wrap=True))
        row = QHBoxLayout()
        row.setSpacing(8)
        if not e.available:
            self.setProperty("invalid", False)
            row.addWidget(badge("No GGUF file", "bad"))
            self.body.addWidget(label(e.unavailable_reason or "", role="error", wrap=True))
            row.addStretch(1)
            if e.alternative:
                alt = self.button(f"See {e.alternative}", name="alternative-button")
                alt.clicked.connect(lambda: self.alternativeClicked.emit(e.alternative))
                row.addWidget(alt)
            self.body.addLayout(row)
            return
        self.quant = QComboBox()
        self.quant.setObjectName("quant-combo")
        for f in e.files:
            self.quant.addItem(f"{f.quant} · {format_bytes(f.size)}", f)
        self.quant.setToolTip("Quantisation: smaller files run faster and need less memory, "
                              "larger ones are closer to the original model")
        self.quant.currentIndexChanged.connect(self._quant_changed)
        self.fit = QHBoxLayout()
        row.addWidget(self.quant)
        row.addLayout(self.fit)
        row.addStretch(1)
        self.installed_badge = badge("Installed", "ok")
        row.addWidget(self.installed_badge)
        self.chat = self.button("Chat", name="chat-button")
        self.chat.clicked.connect(self._chat)
        self.download = self.button("Download", primary=True, name="download-button")
        self.download.clicked.connect(lambda: self.downloadClicked.emit(e, self.quant.currentData()))
        row.addWidget(self.chat)
        row.addWidget(self.download)
        self.body.addLayout(row)
        self._fit_badge: QWidget | None = None
        self._quant_changed()

    def current_file(self):
        return self.quant.currentData()

    def _quant_changed(self, *_: object) -> None:
        f = self.quant.currentData()
        if self._fit_badge is not None:
            self._fit_badge.setParent(None)
            self._fit_badge.deleteLater()
        self._fit_badge = memory_badge(self.item.plans.get(f.quant))
        self.fit.addWidget(self._fit_badge)
        have = self.item.installed.get(f.file)
        self.installed_badge.setVisible(bool(have))
        self.chat.setVisible(bool(have))
        self.download.setVisible(not have)

    def _chat(self) -> None:
        have = self.item.installed.get(self.quant.currentData().file)
        if have:
            self.chatClicked.emit(have)


class HubRepoCard(Card):
    filesRequested = Signal(str)
    downloadClicked = Signal(object)   # app.core.hub.HubFile

    def __init__(self, repo, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.repo = repo
        self.setObjectName(f"hub-{repo.repo_id}")
        gated = badge("Gated", "warn", "Needs a Hugging Face token (Settings)") if repo.gated else None
        row = self.title_row(repo.repo_id, gated)
        self.show_files = self.button("Show files", name="files-button")
        self.show_files.clicked.connect(self._ask_files)
        row.addWidget(self.show_files)
        when = repo.last_modified
        updated = f"updated {when:%Y-%m-%d}" if isinstance(when, datetime) else ""
        facts = [f"by {repo.author}" if repo.author else "", f"{count(repo.downloads)} downloads",
                 f"{count(repo.likes)} likes", updated]
        self.body.addWidget(label("  ·  ".join(f for f in facts if f), role="muted"))
        self.files_box = QVBoxLayout()
        self.files_box.setSpacing(4)
        self.body.addLayout(self.files_box)

    def _ask_files(self) -> None:
        self.show_files.setEnabled(False)
        self.show_files.setText("Loading…")
        self.filesRequested.emit(self.repo.repo_id)

    def set_files(self, files: list, installed: set[str]) -> None:
        self.show_files.hide()
        if not files:
            self.files_box.addWidget(label("No .gguf files in this repository.", role="muted"))
        for f in files:
            row = QHBoxLayout()
            row.addWidget(label(f.filename), 1)
            row.addWidget(label(format_bytes(f.size), role="muted"))
            if f.filename.rsplit("/", 1)[-1] in installed:
                row.addWidget(badge("Installed", "ok"))
            else:
                b = self.button("Download", name="download-button")
                b.clicked.connect(lambda _=False, hf=f: self.downloadClicked.emit(hf))
                row.addWidget(b)
            self.files_box.addLayout(row)

    def set_error(self, text: str) -> None:
        self.show_files.setEnabled(True)
        self.show_files.setText("Show files")
        self.files_box.addWidget(label(text, role="error", wrap=True))


class DiscoveredCard(Card):
    useClicked = Signal(object)     # DiscoveredModel
    chatClicked = Signal(str)       # library id

    def __init__(self, found, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.found = found
        self.setObjectName(f"found-{found.key}")
        row = self.title_row(found.name, badge(found.source_label, "accent"),
                             badge(format_bytes(found.size), "neutral"))
        if found.in_library:
            row.addWidget(badge("In your library", "ok"))
            chat = self.button("Chat", name="chat-button")
            chat.clicked.connect(lambda: self.chatClicked.emit(found.in_library))
            row.addWidget(chat)
        else:
            use = self.button("Use in place", primary=True, name="use-button")
            use.setToolTip("Add it to your library without copying: the file stays where it is")
            use.clicked.connect(lambda: self.useClicked.emit(found))
            row.addWidget(use)
        self.body.addWidget(label(str(found.path), role="muted", wrap=True, selectable=True))
