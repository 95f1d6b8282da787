"""The Library screen: your models, the curated catalog, the Hugging Face hub, other apps' models.

Everything slow runs off the UI thread through `app.gui.background` (scans, imports, memory
plans, hub search, discovery); the screen only lays out cards and routes their clicks:
- import: "Import a GGUF file…" or drag and drop of .gguf files; copied into the models folder
  by default, used in place when "Copy into the models folder" is unticked;
- Download (catalog or hub) → `DownloadController.enqueue`, followed in the Downloads screen;
- "Chat with this model" → `chatRequested(model_id, path)`, which the shell routes to the chat.
A file that cannot be imported is named in an error banner with the reason; nothing is modal
except the delete confirmation.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QFrame, QHBoxLayout, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QScrollArea, QTabWidget, QVBoxLayout,
                               QWidget)

from app.core.library import COPY, LINK
from app.gui import background, theme
from app.gui.downloads.worker import DownloadController, OfflineError
from app.gui.library.cards import (CatalogCard, DiscoveredCard, HubRepoCard, InstalledCard)
from app.gui.library.state import CatalogItem, InstalledItem, LibraryState, catalog_items
from app.gui.widgets import Banner, CardGrid, label

SEARCH_DEBOUNCE_MS = 400
TABS = ("installed", "catalog", "hub", "other")


def gguf_paths(urls: list[QUrl]) -> list[Path]:
    return [Path(u.toLocalFile()) for u in urls
            if u.isLocalFile() and u.toLocalFile().lower().endswith(".gguf")]


def _scroll(body: QWidget) -> QScrollArea:
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(body)
    return area


class LibraryScreen(QWidget):
    chatRequested = Signal(str, str)   # library id, path
    showDownloads = Signal()
    _hubRetrying = Signal(str)         # "… — retrying in 2 s", from a hub call on a pool thread

    def __init__(self, state: LibraryState, downloads: DownloadController,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LibraryScreen")
        self.state = state
        self.downloads = downloads
        self.setAcceptDrops(True)
        self._catalog: list[CatalogItem] = []
        self._hub_files: dict[str, HubRepoCard] = {}
        self._discovered = False
        self._imports = 0

        outer = QVBoxLayout(self)
        outer.setContentsMargins(28, 22, 28, 12)
        outer.setSpacing(12)
        head = QHBoxLayout()
        head.setSpacing(10)
        head.addWidget(label("Library", role="title"))
        head.addStretch(1)
        self.import_button = QPushButton(theme.icon("import", "#ffffff"), " Import a GGUF file…")
        self.import_button.setObjectName("import-button")
        self.import_button.setProperty("primary", True)
        self.import_button.clicked.connect(self.open_import_dialog)
        head.addWidget(self.import_button)
        outer.addLayout(head)
        tools = QHBoxLayout()
        tools.setSpacing(12)
        self.search = QLineEdit()
        self.search.setObjectName("SearchField")
        self.search.setPlaceholderText("Search your models and the catalog  (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(theme.icon("search", theme.colors()["muted"]),
                              QLineEdit.ActionPosition.LeadingPosition)
        self.search.setMinimumWidth(200)
        tools.addWidget(self.search, 1)
        self.copy_files = QCheckBox("Copy imported files into the models folder")
        self.copy_files.setChecked(True)
        self.copy_files.setToolTip("Untick to use imported files where they are (nothing is copied)")
        tools.addWidget(self.copy_files)
        outer.addLayout(tools)

        self.banner = Banner()
        outer.addWidget(self.banner)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.installed_grid = CardGrid(440)
        self.installed_empty = self._installed_empty()
        installed_page = QWidget()
        lay = QVBoxLayout(installed_page)
        lay.setContentsMargins(0, 12, 0, 0)
        lay.addWidget(self.installed_empty)
        lay.addWidget(_scroll(self.installed_grid), 1)
        self.tabs.addTab(installed_page, "Installed")
        self.catalog_grid = CardGrid(440)
        self.tabs.addTab(self._page(_scroll(self.catalog_grid),
                                    "Curated LLaMA-family models, checked against the Hugging Face "
                                    "hub. Memory estimates are for this computer."), "Catalog")
        self.hub_list = QVBoxLayout()
        self.hub_status = label("Type in the search field to search the Hugging Face hub for GGUF "
                                "models.", role="muted", wrap=True)
        self.tabs.addTab(self._list_page(self.hub_list, self.hub_status), "Hugging Face")
        self.other_list = QVBoxLayout()
        self.other_status = label("", role="muted", wrap=True)
        self.tabs.addTab(self._list_page(self.other_list, self.other_status,
                                         rescan=True), "Other apps")
        self.tabs.currentChanged.connect(self._tab_changed)
        outer.addWidget(self.tabs, 1)

        self.drop_hint = QLabel("Drop .gguf files to add them to your library", self)
        self.drop_hint.setObjectName("DropHint")
        self.drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_hint.hide()

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self._search_hub)
        self.search.textChanged.connect(self._search_changed)
        self.search.returnPressed.connect(self._search_now)
        self._hubRetrying.connect(self.hub_status.setText)

        state.changed.connect(self._show_installed)
        state.failed.connect(lambda text: self.banner.show_message(text, "error"))
        downloads.completed.connect(self._download_completed)
        if state.items is not None:
            self._show_installed(state.items)
        state.refresh()
        # The download manager imports huggingface_hub (~0.3 s): load it off the UI thread now.
        QTimer.singleShot(1500, lambda: background.run(lambda: __import__("app.core.downloads")))

    # ------------------------------------------------------------------ layout helpers
    def _page(self, content: QWidget, intro: str) -> QWidget:
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 12, 0, 0)
        lay.setSpacing(10)
        lay.addWidget(label(intro, role="muted", wrap=True))
        lay.addWidget(content, 1)
        return page

    def _list_page(self, layout: QVBoxLayout, status: QLabel, rescan: bool = False) -> QWidget:
        body = QWidget()
        body.setObjectName("ScrollBody")
        inner = QVBoxLayout(body)
        inner.setContentsMargins(0, 0, 8, 0)
        inner.setSpacing(10)
        inner.addLayout(layout)
        inner.addStretch(1)
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 12, 0, 0)
        lay.setSpacing(10)
        top = QHBoxLayout()
        top.addWidget(status, 1)
        if rescan:
            again = QPushButton("Look again")
            again.setObjectName("rescan-button")
            again.clicked.connect(self.discover)
            top.addWidget(again)
        lay.addLayout(top)
        lay.addWidget(_scroll(body), 1)
        return page

    def _installed_empty(self) -> QWidget:
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

    @staticmethod
    def _clear(layout: QVBoxLayout) -> None:
        while layout.count():
            item = layout.takeAt(0)
            if item.widget() is not None:
                item.widget().setParent(None)
                item.widget().deleteLater()

    # ------------------------------------------------------------------ installed models
    def _show_installed(self, items: list[InstalledItem]) -> None:
        self._render_installed(items)
        self._load_catalog()

    def _render_installed(self, items: list[InstalledItem]) -> None:
        words = self.search.text().lower().split()
        shown = [i for i in items if all(w in f"{i.model.id} {i.model.path.name}".lower() for w in words)]
        cards = []
        for item in shown:
            card = InstalledCard(item)
            card.chatClicked.connect(lambda it: self.chatRequested.emit(it.model.id, str(it.model.path)))
            card.deleteClicked.connect(self.delete_model)
            cards.append(card)
        self.installed_grid.set_cards(cards)
        self.installed_empty.setVisible(not items)
        self.tabs.setTabText(0, f"Installed ({len(items)})")

    def installed_ids(self) -> list[str]:
        return [c.item.model.id for c in self.installed_grid.cards]

    # ------------------------------------------------------------------ catalog
    def _load_catalog(self) -> None:
        state = self.state
        items, settings, gpu = state.items or [], state.settings, state.gpu
        background.run(lambda: catalog_items(settings, items, gpu), done=self._show_catalog,
                       failed=lambda exc: self.banner.show_message(f"The catalog cannot be read: {exc}",
                                                                   "error"))

    def _show_catalog(self, items: list[CatalogItem]) -> None:
        self._catalog = items
        self._render_catalog()

    def _render_catalog(self) -> None:
        items = self._catalog
        words = self.search.text().lower()
        cards = []
        for item in items:
            if words and not item.entry.matches(words):
                continue
            card = CatalogCard(item)
            card.downloadClicked.connect(self.download_catalog_file)
            card.chatClicked.connect(self._chat_with_id)
            card.alternativeClicked.connect(self._show_alternative)
            cards.append(card)
        self.catalog_grid.set_cards(cards)
        self.tabs.setTabText(1, f"Catalog ({len(cards)})")

    def _show_alternative(self, entry_id: str) -> None:
        self.search.setText(entry_id)

    def _chat_with_id(self, model_id: str) -> None:
        for item in self.state.items or []:
            if item.model.id == model_id:
                self.chatRequested.emit(item.model.id, str(item.model.path))

    # ------------------------------------------------------------------ downloads
    def download_catalog_file(self, entry, file) -> None:
        self._enqueue(entry.repo, file.file, size=file.size, sha256=file.sha256,
                      gated=entry.gated)

    def download_hub_file(self, hub_file) -> None:
        self._enqueue(hub_file.repo_id, hub_file.filename, size=hub_file.size, sha256=hub_file.sha256)

    def _enqueue(self, repo_id: str, filename: str, *, size=None, sha256=None, gated=False) -> None:
        if gated and not self.state.settings.hf_token:
            self.banner.show_message(f"{repo_id} is gated: add your Hugging Face token in Settings "
                                     "(Ctrl+,) and accept the model's license on its hub page first.",
                                     "error")
            return
        try:
            self.downloads.enqueue(repo_id, filename, size=size, sha256=sha256)
        except OfflineError as exc:
            self.banner.show_message(str(exc), "error")
            return
        except Exception as exc:  # DownloadError, AlreadyDownloaded: the message says what to do
            self.banner.show_message(str(exc), "error")
            return
        self.banner.show_message(f"Downloading {Path(filename).name} — follow it in Downloads (Ctrl+3).",
                                 "info", timeout_ms=6000)

    def _download_completed(self, path: str) -> None:
        self.banner.show_message(f"{Path(path).name} is downloaded, verified and in your library.",
                                 "ok", timeout_ms=8000)
        self.state.refresh()

    # ------------------------------------------------------------------ search
    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def _search_changed(self, text: str) -> None:
        self._render_installed(self.state.items or [])
        self._render_catalog()
        if self.tabs.currentIndex() == TABS.index("hub"):
            self._debounce.start()

    def _search_now(self) -> None:
        if self.tabs.currentIndex() == TABS.index("hub"):
            self._debounce.stop()
            self._search_hub()

    def _search_hub(self) -> None:
        query = self.search.text().strip()
        self._clear(self.hub_list)
        self._hub_files.clear()
        if self.state.settings.offline:
            self.hub_status.setText("Offline mode is on: Corral does not contact the Hugging Face hub. "
                                    "Turn it off in Settings (Ctrl+,) to search.")
            return
        if not query:
            self.hub_status.setText("Type in the search field to search the Hugging Face hub for GGUF models.")
            return
        self.hub_status.setText(f"Searching the hub for “{query}”…")
        settings = self.state.settings

        def search():
            from app.core.hub import client_for

            return query, client_for(settings, on_retry=self._hubRetrying.emit).search(query, limit=30)

        background.run(search, done=self._show_hub, failed=self._hub_failed)

    def _show_hub(self, result) -> None:
        query, repos = result
        if query != self.search.text().strip():
            return  # an older search answered late
        self._clear(self.hub_list)
        self.hub_status.setText(f"{len(repos)} GGUF repositories for “{query}” on the Hugging Face hub."
                                if repos else f"Nothing on the hub matches “{query}”.")
        for repo in repos:
            card = HubRepoCard(repo)
            card.filesRequested.connect(self._hub_files_for)
            card.downloadClicked.connect(self.download_hub_file)
            self._hub_files[repo.repo_id] = card
            self.hub_list.addWidget(card)

    def _hub_failed(self, exc: BaseException) -> None:
        self.hub_status.setText(str(exc))

    def _hub_files_for(self, repo_id: str) -> None:
        settings = self.state.settings

        def files():
            from app.core.hub import client_for

            return repo_id, client_for(settings, on_retry=self._hubRetrying.emit).list_gguf_files(repo_id)

        def failed(exc: BaseException) -> None:
            card = self._hub_files.get(repo_id)
            if card is not None:
                card.set_error(str(exc))

        background.run(files, done=self._show_hub_files, failed=failed)

    def _show_hub_files(self, result) -> None:
        repo_id, files = result
        card = self._hub_files.get(repo_id)
        if card is not None:
            # "Installed" only for what was downloaded from this very repository: a file of the
            # same name from elsewhere is another model (its download takes another name).
            fetched = {j.name for j in self.downloads.jobs()
                       if j.repo_id == repo_id and j.state == "done" and j.path and Path(j.path).is_file()}
            card.set_files(files, fetched)

    # ------------------------------------------------------------------ other apps
    def _tab_changed(self, index: int) -> None:
        if index == TABS.index("other") and not self._discovered:
            self.discover()
        if index == TABS.index("hub") and self.search.text().strip() and not self._hub_files:
            self._search_hub()
        self.search.setPlaceholderText(
            "Search the Hugging Face hub  (Ctrl+F)" if index == TABS.index("hub")
            else "Search your models and the catalog  (Ctrl+F)")

    def show_tab(self, name: str) -> None:
        self.tabs.setCurrentIndex(TABS.index(name))

    def discover(self) -> None:
        self._discovered = True
        self.other_status.setText("Looking for models in LM Studio, GPT4All, Ollama and the "
                                  "Hugging Face cache…")
        library = self.state.library
        background.run(library.discover, done=self._show_discovered,
                       failed=lambda exc: self.other_status.setText(f"Could not look: {exc}"))

    def _show_discovered(self, found: list) -> None:
        self._clear(self.other_list)
        if not found:
            self.other_status.setText("No models found in LM Studio, GPT4All, Ollama or the Hugging Face "
                                      "cache on this computer.")
        else:
            what = "a model" if len(found) == 1 else f"{len(found)} models"
            self.other_status.setText(f"Other apps downloaded {what}. “Use in place” adds it to your "
                                      "library without copying anything.")
        for d in found:
            card = DiscoveredCard(d)
            card.useClicked.connect(self._use_discovered)
            card.chatClicked.connect(self._chat_with_id)
            self.other_list.addWidget(card)
        self.tabs.setTabText(3, f"Other apps ({len(found)})")

    def _use_discovered(self, found) -> None:
        library = self.state.library
        background.run(lambda: library.add_discovered(found.key), done=self._added,
                       failed=lambda exc: self.banner.show_message(f"{found.name}: {exc}", "error"))

    def _added(self, model) -> None:
        self.banner.show_message(f"{model.id} is in your library (used in place: {model.path}).", "ok",
                                 timeout_ms=8000)
        self.state.refresh()
        if self._discovered:
            self.discover()

    # ------------------------------------------------------------------ import
    def open_import_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Import GGUF models", str(Path.home()),
                                                "GGUF models (*.gguf);;All files (*)")
        if files:
            self.import_paths([Path(f) for f in files])

    def import_paths(self, paths: list[Path], mode: str | None = None) -> None:
        """Import files in the background (copy, or link when "Copy" is unticked)."""
        mode = mode or (COPY if self.copy_files.isChecked() else LINK)
        library = self.state.library
        for path in paths:
            path = Path(path)
            self._imports += 1
            verb = "Copying" if mode == COPY else "Adding"
            self.banner.show_message(f"{verb} {path.name} into your library…", "info")
            background.run(lambda p=path: library.import_file(p, mode),
                           done=self._imported,
                           failed=lambda exc, p=path: self._import_failed(p, exc))

    def _imported(self, model) -> None:
        self._imports -= 1
        self.banner.show_message(f"Added {model.id} to your library.", "ok", timeout_ms=8000)
        self.show_tab("installed")
        self.state.refresh()

    def _import_failed(self, path: Path, exc: BaseException) -> None:
        self._imports -= 1
        self.banner.show_message(f"Could not import {path.name}: {exc}", "error")

    # ------------------------------------------------------------------ delete
    def confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def delete_model(self, item: InstalledItem) -> None:
        m = item.model
        if m.kind == "linked":
            text = (f"Remove {m.id} from your library?\n\nThe file stays where it is:\n{m.path}")
        else:
            text = f"Delete {m.id}?\n\nThis deletes the file from your models folder:\n{m.path}"
        if not self.confirm("Delete model", text):
            return
        library = self.state.library
        background.run(lambda: library.delete(m.id), done=self._deleted,
                       failed=lambda exc: self.banner.show_message(f"Could not delete {m.id}: {exc}", "error"))

    def _deleted(self, result) -> None:
        self.banner.show_message(result.describe(), "ok", timeout_ms=8000)
        self.state.refresh()

    # ------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event) -> None:
        if gguf_paths(event.mimeData().urls()):
            event.acceptProposedAction()
            self.drop_hint.setGeometry(self.rect().adjusted(24, 24, -24, -24))
            self.drop_hint.raise_()
            self.drop_hint.show()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if gguf_paths(event.mimeData().urls()):
            event.acceptProposedAction()

    def dragLeaveEvent(self, event) -> None:
        self.drop_hint.hide()

    def dropEvent(self, event) -> None:
        self.drop_hint.hide()
        paths = gguf_paths(event.mimeData().urls())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.import_paths(paths)
