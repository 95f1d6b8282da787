"""The Library's "Hugging Face" tab: search the hub for GGUF repositories (at most 30 answers,
one card each), open a repository's files, download one.

The search runs off the UI thread (`background.run`), debounced by the screen; an answer to an
older query is dropped. Offline mode makes no request at all and says so.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QScrollArea, QVBoxLayout, QWidget

from app.gui import background
from app.gui.library.cards import HubRepoCard
from app.gui.widgets import label

PROMPT = "Type in the search field to search the Hugging Face hub for GGUF models."
RESULTS = 30


def scroll(body: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidget(body)
    return area


def card_list(status: QWidget, top_extra: QWidget | None = None) -> tuple[QWidget, QVBoxLayout]:
    """A page of a status line (and a button beside it) over a scrolled column of cards."""
    body = QWidget()
    body.setObjectName("ScrollBody")
    inner = QVBoxLayout(body)
    inner.setContentsMargins(0, 0, 8, 0)
    inner.setSpacing(10)
    cards = QVBoxLayout()
    inner.addLayout(cards)
    inner.addStretch(1)
    page = QWidget()
    lay = QVBoxLayout(page)
    lay.setContentsMargins(0, 12, 0, 0)
    lay.setSpacing(10)
    top = QHBoxLayout()
    top.addWidget(status, 1)
    if top_extra is not None:
        top.addWidget(top_extra)
    lay.addLayout(top)
    lay.addWidget(scroll(body), 1)
    return page, cards


def clear(layout: QVBoxLayout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        if item.widget() is not None:
            item.widget().setParent(None)
            item.widget().deleteLater()


class HubTab(QWidget):
    downloadClicked = Signal(object)   # app.core.hub.HubFile
    _retrying = Signal(str)            # "… — retrying in 2 s", from a hub call on a pool thread

    def __init__(self, state, downloads, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.downloads = downloads
        self.query = ""
        self.cards: dict[str, HubRepoCard] = {}
        self.status = label(PROMPT, role="muted", wrap=True)
        page, self.list = card_list(self.status)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(page)
        self._retrying.connect(self.status.setText)

    def search(self, query: str) -> None:
        query = query.strip()
        self.query = query
        clear(self.list)
        self.cards.clear()
        settings = self.state.settings
        if settings.offline:
            self.status.setText("Offline mode is on: Corral does not contact the Hugging Face hub. "
                                "Turn it off in Settings (Ctrl+,) to search.")
            return
        if not query:
            self.status.setText(PROMPT)
            return
        self.status.setText(f"Searching the hub for “{query}”…")

        def search():
            from app.core.hub import client_for

            return query, client_for(settings, on_retry=self._retrying.emit).search(query, limit=RESULTS)

        background.run(search, done=self._show, failed=lambda exc: self.status.setText(str(exc)))

    def searched(self) -> bool:
        return bool(self.cards)

    def _show(self, result) -> None:
        query, repos = result
        if query != self.query:
            return  # an older search answered late
        clear(self.list)
        self.status.setText(f"{len(repos)} GGUF repositories for “{query}” on the Hugging Face hub."
                            if repos else f"Nothing on the hub matches “{query}”.")
        for repo in repos:
            card = HubRepoCard(repo)
            card.filesRequested.connect(self._files_for)
            card.downloadClicked.connect(self.downloadClicked)
            self.cards[repo.repo_id] = card
            self.list.addWidget(card)

    def _files_for(self, repo_id: str) -> None:
        settings = self.state.settings

        def files():
            from app.core.hub import client_for

            return repo_id, client_for(settings, on_retry=self._retrying.emit).list_gguf_files(repo_id)

        def failed(exc: BaseException) -> None:
            card = self.cards.get(repo_id)
            if card is not None:
                card.set_error(str(exc))

        background.run(files, done=self._show_files, failed=failed)

    def _show_files(self, result) -> None:
        repo_id, files = result
        card = self.cards.get(repo_id)
        if card is not None:
            # "Installed" only for what was downloaded from this very repository: a file of the
            # same name from elsewhere is another model (its download takes another name).
            fetched = {j.name for j in self.downloads.jobs()
                       if j.repo_id == repo_id and j.state == "done" and j.path and Path(j.path).is_file()}
            card.set_files(files, fetched)
