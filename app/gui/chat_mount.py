"""The chat part in the window: its slot under "Chat", what it reports to the status bar, the
conversation it reopens, and File → Import chat… / Export chat….

The chat part is mounted in ONE place, `_create_chat_screen`: the shell owns the ChatStore, the
EngineWorker (its QThread starts the llama.cpp runner process in the background) and the Library,
hands them to `ChatScreen`, and disposes of them on close. The slot shows the chat screen, the
first-run welcome, or `ChatsProblem` when the chats database cannot be opened (which file, what
to do; "Set it aside and start a new one" for a damaged one, only when pressed) — the other
screens never depend on it. A mixin of MainWindow (main_window.py), which holds the rest.

The conversation open when the window closed is reopened next time (its id is kept in
window.ini; one deleted meanwhile leaves the chat screen's own choice, the most recent).
Import chat… reads a JSON export through app.core.chat_transfer (a damaged file is refused
with its name and what is wrong, in a message box) and opens the new conversation.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox, QStackedWidget, QWidget

from app.core.chats import ChatStoreError, store_error
from app.core.paths import get_paths

if TYPE_CHECKING:
    from PySide6.QtWidgets import QStatusBar

    from app.core.chats import ChatStore
    from app.core.settings import Settings
    from app.gui.chat import ChatScreen
    from app.gui.library.state import LibraryState
    from app.gui.shell.geometry import WindowState
    from app.gui.shell.status import StatusPanel
    from app.gui.welcome import ChatsProblem, WelcomeScreen
    from app.gui.workers import EngineWorker

log = logging.getLogger(__name__)


class ChatMountMixin:
    """MainWindow's chat part (see the module's doc).

    Everything it uses of the window is declared below (annotations only, so nothing here
    shadows QMainWindow or MainWindow): what MainWindow.__init__ sets, and what it sets itself."""

    # Set by MainWindow.__init__ (main_window.py).
    settings: Settings
    library_state: LibraryState
    window_state: WindowState
    status: StatusPanel
    chat_store: ChatStore | None
    engine: EngineWorker | None
    chat_screen: ChatScreen | None
    welcome: WelcomeScreen | None
    chats_problem: ChatsProblem | None
    # MainWindow's (and QMainWindow's) methods it calls.
    statusBar: Callable[[], QStatusBar]
    show_screen: Callable[[str], QWidget]
    current_screen: Callable[[], str]
    keep_focus_visible: Callable[..., None]
    import_model: Callable[[], None]
    add_notice: Callable[..., None]
    _library_tab: Callable[[str], None]
    _backend_choice: Callable[[], str]
    # Its own, set here.
    _chat_slot: QStackedWidget
    chat_file_message: QMessageBox | None = None  # the open import/export message, if any
    _engine_state: str | None = None  # the chat part's last engine state ("loading", "error"…)

    def _create_chat_screen(self) -> QWidget:
        """THE mount point of the chat part (app/gui/chat): the shell owns its store and worker.
        Raises ChatStoreError when the chats database cannot be used (nothing left open)."""
        from app.core.chats import ChatStore
        from app.gui.chat import ChatScreen
        from app.gui.workers import EngineWorker

        store = ChatStore()
        engine = None
        try:
            engine = EngineWorker(log_file=get_paths().logs / "runner.log")
            # The window's own library scan is handed over (_library_changed), not read twice.
            screen = ChatScreen(store, engine, self.library_state.library, self.settings,
                                scan_library=False)
        except BaseException as exc:
            if engine is not None:
                engine.dispose()
            store.close()
            if isinstance(exc, sqlite3.DatabaseError):  # met reading it: said as opening is
                raise store_error(store.path, exc) from None
            raise
        self.chat_store, self.engine = store, engine
        # Ctrl+N and Ctrl+F are the window's (they must work on every screen): the chat's own
        # actions keep their text but give up the keys, so no shortcut is ambiguous.
        for action in (screen.new_chat_action, screen.search_action):
            action.setShortcut(QKeySequence())
        screen.splitter.setObjectName("chat-splitter")  # its sizes are kept with the window's
        from app.gui.shell import menus

        shell_has = (screen.new_chat_action, screen.search_action, screen.export_action)
        menus.add_chat_actions(self, [a for a in screen.actions_for_shell() if a not in shell_has])
        return screen

    def _build_chat_slot(self) -> QWidget:
        from app.gui.welcome import WelcomeScreen

        slot = QStackedWidget()
        slot.setObjectName("ChatSlot")
        self._chat_slot = slot
        self.welcome = WelcomeScreen()
        self.welcome.browseCatalog.connect(lambda: self._library_tab("catalog"))
        self.welcome.importFile.connect(self.import_model)
        self.welcome.findOtherApps.connect(lambda: self._library_tab("other"))
        slot.addWidget(self.welcome)
        self._open_chats()
        return slot

    def _open_chats(self) -> None:
        """Open the chats database and mount the chat screen; when it cannot be opened, say
        why in its place (the rest of the window does not depend on it)."""
        if self.chat_screen is not None:  # opened already (a second click on "Try again")
            return
        try:
            screen = self._create_chat_screen()
        except ChatStoreError as exc:
            self._show_chats_problem(str(exc), exc.kind)
            return
        except Exception as exc:  # noqa: BLE001 - whatever it is, the other screens stay usable
            log.exception("the chat screen could not be built")
            self._show_chats_problem(f"the chat screen could not be opened ({exc}); try again, "
                                     f"and if it keeps failing see {get_paths().logs}", "other")
            return
        self.chat_screen = screen
        self._chat_slot.addWidget(screen)
        self._attach_chat(screen)
        self._chat_slot.setCurrentWidget(screen)
        self._reopen_conversation()
        if self.library_state.items is not None:
            self._library_changed(self.library_state.items)
        self.window_state.restore_splitters(screen)

    def _show_chats_problem(self, text: str, kind: str) -> None:
        from app.gui.welcome import ChatsProblem

        if self.chats_problem is None:
            self.chats_problem = ChatsProblem()
            self.chats_problem.setAsideRequested.connect(self._set_aside_chats)
            self.chats_problem.retryRequested.connect(self._open_chats)
            self._chat_slot.addWidget(self.chats_problem)
        self.chats_problem.show_problem(text, kind)
        self._chat_slot.setCurrentWidget(self.chats_problem)

    def _set_aside_chats(self) -> None:
        """The user agreed: rename the damaged database (kept, dated) and start a new one."""
        from app.core.chats import set_aside

        path = get_paths().chats_db
        try:
            aside = set_aside(path)
        except OSError as exc:
            self._show_chats_problem(
                f"the chats database {path} could not be set aside "
                f"({(exc.strerror or str(exc)).lower()}); move it away yourself, then try again",
                "unavailable")
            return
        self.add_notice(f"The damaged chats database was kept as {aside}; a new one was started.",
                        "info")
        self._open_chats()

    def _library_changed(self, items: list) -> None:
        if self.chat_screen is None:  # not built yet, or its problem is shown instead
            return
        self.chat_screen.refresh_models([(i.model, i.family) for i in items])
        first_run = not any(i.model.ok for i in items) and self.chat_store.count() == 0
        self._chat_slot.setCurrentWidget(self.welcome if first_run else self.chat_screen)
        # Never on a welcome button that is not shown any more; once the screen swapped in is
        # shown (a widget added to a shown page is shown by a queued call).
        QTimer.singleShot(0, self.keep_focus_visible)

    def _chat_shown(self, switch: bool = False) -> bool:
        """Whether the chat screen itself is what the Chat slot shows (not the welcome or its
        problem); `switch` first brings the Chat screen to the front."""
        if switch:
            self.show_screen("chat")
        return self.chat_screen is not None and self._chat_slot.currentWidget() is self.chat_screen

    def showing_welcome(self) -> bool:
        return (self.welcome is not None and self.current_screen() == "chat"
                and self._chat_slot.currentWidget() is self.welcome)

    def chat_with(self, model_id: str, path: str) -> None:
        """"Chat with this model" from the library: to the chat screen, with that model."""
        self.show_screen("chat")
        if self.chat_screen is None:  # its problem is shown: nothing to chat in
            return
        self._chat_slot.setCurrentWidget(self.chat_screen)
        self.chat_screen.chat_with_model(model_id)

    # ------------------------------------------------------------------ reopen, import, export
    def open_conversation_id(self) -> int | None:
        """The saved conversation open now (None: none, or a new chat not saved yet)."""
        if self.chat_screen is None:
            return None
        return self.chat_screen.current_conversation_id() or None

    def _reopen_conversation(self) -> None:
        cid = self.window_state.conversation()
        if cid is None or cid == self.chat_screen.current_conversation_id():
            return
        try:
            self.chat_store.conversation(cid)
        except ChatStoreError:  # deleted since (or another database): keep the screen's choice
            return
        self.chat_screen.open_conversation(cid)

    def ask_import_chat(self) -> None:
        """File → Import chat…: pick a JSON export, then `import_chat`."""
        path, _ = QFileDialog.getOpenFileName(self, "Import chat", str(get_paths().data.parent),
                                              "Chat exports (*.json);;All files (*)")
        if path:
            self.import_chat(path)

    def import_chat(self, path: str) -> int | None:
        """Import the conversation exported to `path` and open it; its id, or None when the
        file was refused (said in a message box naming the file and what is wrong)."""
        from app.core.chat_transfer import ChatImportError, import_json

        if not self._chat_shown(switch=True) and self.chat_store is None:
            self._tell("Import chat", "Your conversations cannot be opened, so nothing can be "
                       "imported now; see the Chat screen.")
            return None
        try:
            conv = import_json(self.chat_store, path)
        except (ChatImportError, ChatStoreError, OSError) as exc:
            self._tell("Import chat", f"Not imported: {exc}")
            return None
        self._chat_slot.setCurrentWidget(self.chat_screen)
        self.chat_screen.open_conversation(conv.id)
        self.statusBar().showMessage(f"Imported “{conv.title}”", 6000)
        return conv.id

    def export_chat(self) -> None:
        """File → Export chat…: the chat screen asks where and saves the open conversation."""
        if self._chat_shown(switch=True):
            if not self.chat_screen.current_conversation_id():
                self.statusBar().showMessage("Nothing to export yet: this chat is empty", 6000)
                return
            self.chat_screen.export_current()

    def _tell(self, title: str, text: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok,
                          self)
        box.setObjectName("chat-file-message")
        self.chat_file_message = box  # kept for tests and so it is not collected while open
        box.open()

    # ------------------------------------------------------------------ chat part → status bar
    def _attach_chat(self, screen: QWidget) -> None:
        for signal, slot in (("engineStatus", self.engine_status),
                             ("statusMessage", self.status_message),
                             ("libraryRequested", self._library_requested),
                             ("libraryChanged", self.library_state.refresh)):
            sig = getattr(screen, signal, None)
            if sig is not None:
                sig.connect(slot)

    def engine_status(self, info: dict) -> None:
        """The chat part's {model, backend, state, progress, tokens_per_s, n_ctx}."""
        self._engine_state = info.get("state")
        model = info.get("model")
        if info.get("state") == "loading":
            progress = info.get("progress")
            text = f"loading {model or 'the model'}…" + (f" {progress * 100:.0f} %" if progress else "")
            self.status.set_model(text)
        else:
            self.status.set_model(model)
        backend = info.get("backend")
        if backend:
            self.status.set_backend("CPU" if backend == "cpu" else f"GPU ({backend})")
        else:
            self.status.set_backend(self._backend_choice())
        self.status.set_tokens_per_second(info.get("tokens_per_s"))
        if info.get("n_ctx"):
            self.status.model.setToolTip(f"context {info['n_ctx']} tokens")
        QTimer.singleShot(0, self.status.update_memory)

    def status_message(self, text: str) -> None:
        if self._engine_state == "error":
            self.statusBar().showMessage(text, 10000)

    def _library_requested(self) -> None:
        self._library_tab("installed" if self.library_state.usable else "catalog")
