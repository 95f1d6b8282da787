"""The Library screen: your models, the curated catalog, the Hugging Face hub, other apps' models.

The shell holds what the tabs share — the search field, the import button and the "copy" choice,
the banner, the imports in progress, drag and drop — and routes what the tabs ask for:
- import: "Import a GGUF file…" or drag and drop of .gguf files; copied into the models folder
  with progress and Cancel (imports.py), or used in place when "Copy…" is unticked;
- Download (catalog or hub) → `DownloadController.enqueue`, followed in the Downloads screen;
- "Chat with this model" → `chatRequested(model_id, path)`, which the shell routes to the chat.
A file that cannot be imported is named in an error banner with the reason; nothing is modal
except the delete confirmation. The search filters the Installed and Catalog tables (debounced,
no widget per row) and, on the Hugging Face tab, searches the hub (debounced longer: a request).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QMessageBox,
                               QPushButton, QStackedWidget, QTabWidget, QVBoxLayout, QWidget)

from app.core.library import COPY, LINK
from app.gui import background, theme
from app.gui.downloads.worker import DownloadController, OfflineError
from app.gui.library.catalog import CatalogTab
from app.gui.library.hub import HubTab
from app.gui.library.imports import ImportsPanel
from app.gui.library.installed import InstalledTab
from app.gui.library.other_apps import OtherAppsTab
from app.gui.library.state import CatalogItem, InstalledItem, LibraryState, catalog_items
from app.gui.overlay import float_banners
from app.gui.widgets import Banner, label

FILTER_DEBOUNCE_MS = 120   # the tables: cheap, but one filter per burst of keys
SEARCH_DEBOUNCE_MS = 400   # the hub: one request per pause in typing
TABS = ("installed", "catalog", "hub", "other")


def gguf_paths(urls: list[QUrl]) -> list[Path]:
    return [Path(u.toLocalFile()) for u in urls
            if u.isLocalFile() and u.toLocalFile().lower().endswith(".gguf")]


class LibraryScreen(QWidget):
    chatRequested = Signal(str, str)   # library id, path
    showDownloads = Signal()

    def __init__(self, state: LibraryState, downloads: DownloadController,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("LibraryScreen")
        self.state = state
        self.downloads = downloads
        self.setAcceptDrops(True)
        self._pending_select: str | None = None   # a model just imported: select it when listed

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

        self.banner = Banner()   # floats over the tabs' pages (below): showing it moves nothing
        self.imports = ImportsPanel()
        self.imports.imported.connect(self._imported)
        self.imports.failed.connect(self._import_failed)
        self.imports.cancelled.connect(lambda path: self.banner.show_message(
            f"The import of {path.name} was cancelled; nothing was copied.", "info", timeout_ms=8000))
        outer.addWidget(self.imports)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.installed = InstalledTab()
        self.installed.chatRequested.connect(lambda it: self.chatRequested.emit(it.model.id, str(it.model.path)))
        self.installed.deleteRequested.connect(self.delete_model)
        self.tabs.addTab(self.installed, "Installed")
        self.catalog = CatalogTab()
        self.catalog.downloadClicked.connect(self.download_catalog_file)
        self.catalog.chatClicked.connect(self._chat_with_id)
        self.catalog.alternativeClicked.connect(self._show_alternative)
        self.tabs.addTab(self.catalog, "Catalog")
        self.hub = HubTab(state, downloads)
        self.hub.downloadClicked.connect(self.download_hub_file)
        self.tabs.addTab(self.hub, "Hugging Face")
        self.other = OtherAppsTab(state)
        self.other.chatClicked.connect(self._chat_with_id)
        self.other.added.connect(self._added)
        self.other.failed.connect(lambda text: self.banner.show_message(text, "error"))
        self.other.counted.connect(lambda n: self.tabs.setTabText(TABS.index("other"), f"Other apps ({n})"))
        self.tabs.addTab(self.other, "Other apps")
        self.tabs.currentChanged.connect(self._tab_changed)
        outer.addWidget(self.tabs, 1)
        # Over the top of the pages, under the tab bar, as wide as the tables (a one-line banner
        # covers their column headers): the pages' foot holds the selected model's card and its
        # buttons (Chat, Delete, Download), which a waiting error must not hide.
        pages = self.tabs.findChild(QStackedWidget,
                                    options=Qt.FindChildOption.FindDirectChildrenOnly)
        self.banners = float_banners(self, pages, self.banner, edge="top", margins=(0, 2, 0, 2))
        # What tests, the shell and tools reach: the hub's and other apps' card lists.
        self.hub_list, self.hub_status = self.hub.list, self.hub.status
        self.other_list, self.other_status = self.other.list, self.other.status

        self.drop_hint = QLabel("Drop .gguf files to add them to your library", self)
        self.drop_hint.setObjectName("DropHint")
        self.drop_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.drop_hint.hide()

        self._filter = self._timer(FILTER_DEBOUNCE_MS, self._apply_filter)
        self._hub_search = self._timer(SEARCH_DEBOUNCE_MS, self._search_hub)
        self.search.textChanged.connect(self._search_changed)
        self.search.returnPressed.connect(self._search_now)

        state.changed.connect(self._show_installed)
        state.failed.connect(lambda text: self.banner.show_message(text, "error"))
        downloads.completed.connect(self._download_completed)
        if state.items is not None:
            self._show_installed(state.items)
        state.refresh()
        # The download manager imports huggingface_hub (~0.3 s): load it off the UI thread now.
        QTimer.singleShot(1500, lambda: background.run(lambda: __import__("app.core.downloads")))

    def _timer(self, ms: int, fn) -> QTimer:
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.setInterval(ms)
        timer.timeout.connect(fn)
        return timer

    # ------------------------------------------------------------------ installed and catalog
    def _show_installed(self, items: list[InstalledItem]) -> None:
        self.installed.set_items(items)
        self._apply_filter()
        if self._pending_select and self.installed.select(self._pending_select):
            self._pending_select = None
        self._load_catalog()

    def installed_ids(self) -> list[str]:
        """The ids of the installed models shown (the search applied), in the order shown."""
        return [item.model.id for item in self.installed.items()]

    def _load_catalog(self) -> None:
        state = self.state
        items, settings, gpu = state.items or [], state.settings, state.gpu
        background.run(lambda: catalog_items(settings, items, gpu), done=self._show_catalog,
                       failed=lambda exc: self.banner.show_message(f"The catalog cannot be read: {exc}",
                                                                   "error"))

    def _show_catalog(self, items: list[CatalogItem]) -> None:
        self.catalog.set_items(items)
        self._apply_filter()

    def _show_alternative(self, entry_id: str) -> None:
        self.search.clear()
        self._apply_filter()
        self.catalog.select(entry_id)

    def _chat_with_id(self, model_id: str) -> None:
        for item in self.state.items or []:
            if item.model.id == model_id:
                self.chatRequested.emit(item.model.id, str(item.model.path))

    # ------------------------------------------------------------------ search
    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def _search_changed(self, _text: str) -> None:
        self._filter.start()
        if self.tabs.currentIndex() == TABS.index("hub"):
            self._hub_search.start()

    def _search_now(self) -> None:
        self._filter.stop()
        self._apply_filter()
        if self.tabs.currentIndex() == TABS.index("hub"):
            self._hub_search.stop()
            self._search_hub()

    def _apply_filter(self) -> None:
        text = self.search.text()
        self.installed.set_query(text)
        self.catalog.set_query(text)
        shown, total = self.installed.table.proxy.rowCount(), self.installed.count
        self.tabs.setTabText(TABS.index("installed"),
                             f"Installed ({shown} of {total})" if shown != total else f"Installed ({total})")
        self.tabs.setTabText(TABS.index("catalog"), f"Catalog ({len(self.catalog.items())})")

    def _search_hub(self) -> None:
        self.hub.search(self.search.text())

    def _tab_changed(self, index: int) -> None:
        if index == TABS.index("other") and not self.other.looked:
            self.other.discover()
        if index == TABS.index("hub") and self.search.text().strip() and not self.hub.searched():
            self._search_hub()
        self.search.setPlaceholderText(
            "Search the Hugging Face hub  (Ctrl+F)" if index == TABS.index("hub")
            else "Search your models and the catalog  (Ctrl+F)")

    def show_tab(self, name: str) -> None:
        self.tabs.setCurrentIndex(TABS.index(name))

    def discover(self) -> None:
        self.other.discover()

    # ------------------------------------------------------------------ downloads
    def download_catalog_file(self, entry, file) -> None:
        self._enqueue(entry.repo, file.file, size=file.size, sha256=file.sha256, gated=entry.gated)

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

    # ------------------------------------------------------------------ other apps
    def _added(self, model) -> None:
        self.banner.show_message(f"{model.id} is in your library (used in place: {model.path}).", "ok",
                                 timeout_ms=8000)
        self.state.refresh()

    # ------------------------------------------------------------------ import
    def open_import_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Import GGUF models", str(Path.home()),
                                                "GGUF models (*.gguf);;All files (*)")
        if files:
            self.import_paths([Path(f) for f in files])

    def import_paths(self, paths: list[Path], mode: str | None = None) -> None:
        """Import files, each on its own thread with a progress row (copy, or link when
        "Copy" is unticked)."""
        mode = mode or (COPY if self.copy_files.isChecked() else LINK)
        for path in paths:
            self.imports.start(self.state.library, Path(path), mode)

    def _imported(self, model) -> None:
        self.banner.show_message(f"Added {model.id} to your library.", "ok", timeout_ms=8000)
        self.show_tab("installed")
        self._pending_select = model.id
        self.state.refresh()

    def _import_failed(self, path: Path, exc: BaseException) -> None:
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
            text = f"Remove {m.id} from your library?\n\nThe file stays where it is:\n{m.path}"
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
