"""The Library's "Other apps" tab: models LM Studio, GPT4All, Ollama or the Hugging Face cache
already downloaded, each offered "Use in place" (linked, never copied) or Chat when it is in the
library. Looked for off the UI thread the first time the tab is shown, and on "Look again"."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QPushButton, QVBoxLayout, QWidget

from app.gui import background
from app.gui.library.cards import DiscoveredCard
from app.gui.library.hub import card_list, clear
from app.gui.widgets import label


class OtherAppsTab(QWidget):
    chatClicked = Signal(str)       # library id
    added = Signal(object)          # the LocalModel linked
    failed = Signal(str)            # a message for the screen's banner
    counted = Signal(int)           # how many were found

    def __init__(self, state, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.looked = False
        self.status = label("", role="muted", wrap=True)
        again = QPushButton("Look again")
        again.setObjectName("rescan-button")
        again.clicked.connect(self.discover)
        page, self.list = card_list(self.status, again)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(page)

    def discover(self) -> None:
        self.looked = True
        self.status.setText("Looking for models in LM Studio, GPT4All, Ollama and the "
                            "Hugging Face cache…")
        background.run(self.state.library.discover, done=self._show,
                       failed=lambda exc: self.status.setText(f"Could not look: {exc}"))

    def _show(self, found: list) -> None:
        clear(self.list)
        if not found:
            self.status.setText("No models found in LM Studio, GPT4All, Ollama or the Hugging Face "
                                "cache on this computer.")
        else:
            what = "a model" if len(found) == 1 else f"{len(found)} models"
            self.status.setText(f"Other apps downloaded {what}. “Use in place” adds it to your "
                                "library without copying anything.")
        for d in found:
            card = DiscoveredCard(d)
            card.useClicked.connect(self._use)
            card.chatClicked.connect(self.chatClicked)
            self.list.addWidget(card)
        self.counted.emit(len(found))

    def _use(self, found) -> None:
        library = self.state.library
        background.run(lambda: library.add_discovered(found.key), done=self._added,
                       failed=lambda exc: self.failed.emit(f"{found.name}: {exc}"))

    def _added(self, model) -> None:
        self.added.emit(model)
        if self.looked:
            self.discover()
