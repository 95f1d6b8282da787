"""The shell: a menu bar, a sidebar (Chat, Library, Downloads, Settings), the screens, and a
status bar. Its parts live in app/gui/shell/ (sidebar and lazy pages, menus and shortcuts,
status bar, geometry and window.ini); the chat part's mount in chat_mount.py (a mixin).

Start-up is kept short: only the screen shown first is built (the others on first visit), the
library is scanned in the background (`LibraryState`), the download manager comes back after the
window is shown, and llama.cpp never loads on this thread (the chat part's EngineWorker starts
its runner process in the background). The window's size and place (fitted to the screen's
available geometry), the sizes of every named QSplitter, the last screen and the open
conversation are kept in `<data>/window.ini` (under CORRAL_HOME in tests).

The chat screen reports through `engineStatus(dict)`, `statusMessage(str)` and
`libraryRequested()`; the shell calls its `new_chat()`, `focus_search()`, `focus_composer()`,
`find_in_conversation()`, `choose_model()`, `open_conversation(id)`, `chat_with_model(id)`,
`export_current()`, `refresh_models()`, `apply_settings()` and `shutdown()`.

Start-up never stops on bad state: a chats database that cannot be opened is explained in the
chat's place (chat_mount.py) while the other screens work, and problems with the other state
files (settings.json, library.json… see app.core.statefile) are notices floating across the
top of the screens (app/gui/overlay.py: showing or dismissing one moves nothing), kept until
dismissed.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QEvent, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (QApplication, QHBoxLayout, QMainWindow, QSizePolicy,
                               QStackedWidget, QVBoxLayout, QWidget)

from app.core import statefile
from app.core.paths import get_paths
from app.core.settings import Settings
from app.gui import background, theme
from app.gui.chat_mount import ChatMountMixin
from app.gui.downloads.worker import DownloadController
from app.gui.library.state import LibraryState
from app.gui.overlay import EdgeOverlay
from app.gui.shell import geometry, menus
from app.gui.shell.sidebar import LazySlot, Sidebar
from app.gui.shell.status import StatusPanel
from app.gui.widgets import Banner

SCREENS = ("chat", "library", "downloads")
LABELS = {"chat": "Chat", "library": "Library", "downloads": "Downloads"}
ACTIVE_JOBS = ("queued", "downloading", "verifying")


class MainWindow(ChatMountMixin, QMainWindow):
    ready = Signal()  # after start-up: the chat screen is built (emitted once)
    noticeArrived = Signal(str)  # from any thread (statefile notices); shown on the GUI thread

    def __init__(self, settings: Settings | None = None, *, settings_error: str | None = None) -> None:
        super().__init__()
        from app.core.settings import load_settings

        self.setWindowTitle("Corral")
        self.setObjectName("MainWindow")
        self.setAcceptDrops(True)
        self.settings = settings if settings is not None else load_settings()
        self.theme = theme.ensure(self.settings.theme)
        paths = get_paths()
        self.window_state = geometry.WindowState(str(paths.data / "window.ini"))
        self.library_state = LibraryState(self.settings, self)
        self.downloads = DownloadController(self.settings, paths.downloads / "queue.json", self)
        self.chat_screen: QWidget | None = None
        self.chat_store = None
        self.engine = None
        self.welcome: QWidget | None = None
        self.chats_problem: QWidget | None = None  # shown instead of the chat when it cannot open
        self._notices: list[Banner] = []
        self.is_ready = False
        self._first_paint = False
        self._closed = False

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        self.sidebar = Sidebar(LABELS)
        self.sidebar.installEventFilter(self)  # its first paint starts the deferred start-up work
        self.sidebar.screenChosen.connect(self.show_screen)
        self.sidebar.settingsRequested.connect(self.open_settings)
        row.addWidget(self.sidebar)
        self.stack = QStackedWidget()
        self.slots = {"chat": LazySlot(self._build_chat_slot, "Opening your conversations…"),
                      "library": LazySlot(self._build_library),
                      "downloads": LazySlot(self._build_downloads)}
        for name in SCREENS:
            self.stack.addWidget(self.slots[name])
        # Only the screen shown sets the window's minimum size (the chat is wider than the rest).
        self.stack.currentChanged.connect(self._size_to_current)
        self._size_to_current(0)
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        # Notices float over the top of the screens: showing or dismissing one moves nothing.
        self.notice_box = EdgeOverlay(central, self.stack, "top")
        self.notice_box.setObjectName("Notices")
        self.status = StatusPanel(self)
        self.status.set_backend(self._backend_choice())
        self.actions_by_name = menus.build(self, self.commands())
        self.sidebar.set_shortcuts({**{n: menus.shortcut_text(self.actions_by_name[f"screen_{n}"])
                                       for n in SCREENS},
                                    "settings": menus.shortcut_text(self.actions_by_name["settings"])})
        # State files that could not be used as they were (set aside, defaults used…): said in
        # the window, those met before it existed and those met later (from any thread).
        self.noticeArrived.connect(self.add_notice)
        self._notice_listener = statefile.add_listener(self.noticeArrived.emit)
        if settings_error:
            self.add_notice(settings_error, "error")
        for notice in statefile.take_notices():
            self.add_notice(notice)

        self.library_state.changed.connect(self._library_changed)
        self.library_state.failed.connect(self._library_failed)
        self.downloads.jobChanged.connect(self._download_badge)
        self.downloads.completed.connect(lambda _p: self.library_state.refresh())
        self.theme.changed.connect(self.sidebar.retint)

        last = self.window_state.restore(self)
        self._show_first(last if last in SCREENS else "chat")
        self.library_state.refresh()
        QTimer.singleShot(0, self.status.update_memory)
        self.status.timer.start()

    # ------------------------------------------------------------------ start-up
    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Paint and not self._first_paint:
            self._first_paint = True
            QTimer.singleShot(0, self._after_first_paint)
        return False

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._first_paint:  # no paint event (a platform that never exposes): go anyway
            QTimer.singleShot(300, self._after_first_paint)

    def _after_first_paint(self) -> None:
        """The window is on screen: now build the chat screen (its store, worker and runner)
        and bring back the download queue. Done once, after the first frame, so the window
        appears at once whatever the chat screen costs to build."""
        if self.is_ready or self._closed:
            return
        geometry.refit(self)  # now that the window manager has framed it, its frame is known
        try:
            self.build_screen("chat")  # a chats problem is shown in its place, never raised
        finally:  # whatever happened there, start-up ends and the rest of the window works
            self.is_ready = True
            self.downloads.start_later()
            # The keyboard to the screen's first place (the composer), once it is shown: not
            # where Qt put it on activation, the first button of the sidebar.
            QTimer.singleShot(0, lambda: self.keep_focus_visible(start=True))
            self.ready.emit()

    def _show_first(self, name: str) -> None:
        if name == "chat":  # built after the first frame (_after_first_paint)
            self.stack.setCurrentWidget(self.slots["chat"])
            self.sidebar.set_current("chat")
        else:
            self.show_screen(name)

    # ------------------------------------------------------------------ commands
    def commands(self) -> dict[str, Callable[[], None]]:
        """What each command of the menus (app/gui/shell/menus.py) does."""
        return {"new_chat": self.new_chat, "import_model": self.import_model,
                "import_chat": self.ask_import_chat, "export_chat": self.export_chat,
                "quit": self.quit, "find": self.find, "search_chats": self.search_chats,
                "choose_model": self.choose_model,
                **{f"screen_{n}": (lambda n=n: self.show_screen(n)) for n in SCREENS},
                "settings": self.open_settings, "shortcuts": self.show_shortcuts,
                "about": lambda: menus.about(self)}

    def quit(self) -> None:
        """File → Quit: close the window (it saves its state and stops the runner)."""
        if self.close():  # a dialog left open must not keep the application running
            QApplication.quit()

    def show_shortcuts(self) -> menus.ShortcutsDialog:
        self.shortcuts_dialog = menus.ShortcutsDialog(self)
        self.shortcuts_dialog.open()
        return self.shortcuts_dialog

    def import_model(self) -> None:
        self.show_screen("library").open_import_dialog()

    def find(self) -> None:
        """Ctrl+F: find in the conversation on the chat screen; search models elsewhere."""
        if self.current_screen() == "chat" and self._chat_shown():
            self.chat_screen.find_in_conversation()
        elif self.current_screen() != "chat":
            self.show_screen("library").focus_search()

    def search_chats(self) -> None:
        if self._chat_shown(switch=True):
            self.chat_screen.focus_search()

    def choose_model(self) -> None:
        if self._chat_shown(switch=True):
            self.chat_screen.choose_model()

    def new_chat(self) -> None:
        if self._chat_shown(switch=True):
            self.chat_screen.new_chat()

    # ------------------------------------------------------------------ screens
    def _size_to_current(self, index: int) -> None:
        for i in range(self.stack.count()):
            policy = QSizePolicy.Policy.Preferred if i == index else QSizePolicy.Policy.Ignored
            self.stack.widget(i).setSizePolicy(policy, policy)
            self.stack.widget(i).updateGeometry()

    def current_screen(self) -> str:
        return SCREENS[self.stack.currentIndex()]

    @Slot(str)
    def show_screen(self, name: str) -> QWidget:
        slot = self.slots[name]
        screen = slot.ensure()
        self.stack.setCurrentWidget(slot)
        self.sidebar.set_current(name)
        self.window_state.restore_splitters(screen)
        self.keep_focus_visible()
        return screen

    def build_screen(self, name: str) -> QWidget:
        """The screen `name`, built if it was not yet (without switching to it)."""
        screen = self.slots[name].ensure()
        self.window_state.restore_splitters(screen)
        return screen

    def keep_focus_visible(self, start: bool = False) -> None:
        """Focus always on something shown: when the focused widget was hidden (its page left,
        the welcome replaced by the chat), it goes to the chat's composer or else the first
        control of the screen shown (or that screen's sidebar button). `start`: whatever has
        the focus (the window was just opened)."""
        focus = self.focusWidget()
        if focus is not None and focus.isVisible() and not start:
            return
        name = self.current_screen()
        if name == "chat" and self._chat_shown():
            self.chat_screen.focus_composer()
            if self.focusWidget() is not None and self.focusWidget().isVisible():
                return
        target = self.sidebar.buttons[name]
        page, widget = self.slots[name], self.slots[name].nextInFocusChain()
        while widget is not page and widget is not self:
            if (page.isAncestorOf(widget) and widget.isVisible() and widget.isEnabled()
                    and widget.focusPolicy() & Qt.FocusPolicy.TabFocus):
                target = widget
                break
            widget = widget.nextInFocusChain()
        target.setFocus(Qt.FocusReason.OtherFocusReason)

    def _build_library(self) -> QWidget:
        from app.gui.library.screen import LibraryScreen

        screen = LibraryScreen(self.library_state, self.downloads)
        screen.chatRequested.connect(self.chat_with)
        return screen

    def _build_downloads(self) -> QWidget:
        from app.gui.downloads.screen import DownloadsScreen

        if self.downloads.has_saved_jobs():
            self.downloads.ensure_manager()
        screen = DownloadsScreen(self.downloads)
        screen.browseCatalog.connect(lambda: self._library_tab("catalog"))
        return screen

    def _library_tab(self, tab: str) -> None:
        self.show_screen("library").show_tab(tab)

    def _library_failed(self, text: str) -> None:
        if self.slots["library"].screen is None:  # the Library screen says it itself
            self.add_notice(text, "error")

    # ------------------------------------------------------------------ notices
    @Slot(str)
    def add_notice(self, text: str, kind: str = "info") -> None:
        """A message across the top of the window, kept until dismissed (once per text)."""
        if any(b.text.text() == text and not b.isHidden() for b in self._notices):
            return
        banner = Banner()
        self._notices.append(banner)
        self.notice_box.add(banner)
        banner.show_message(text, kind)

    def notices(self) -> list[str]:
        """The notices shown now, oldest first."""
        return [b.text.text() for b in self._notices if not b.isHidden()]

    def _download_badge(self, event: Any) -> None:
        self.sidebar.set_badge(sum(1 for j in self.downloads.jobs() if j.state in ACTIVE_JOBS))

    def _backend_choice(self) -> str:
        return {"auto": "Auto", "cpu": "CPU", "gpu": "GPU"}[self.settings.backend]

    # ------------------------------------------------------------------ settings
    def open_settings(self) -> None:
        from app.gui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.settings, self, gpu=self.library_state.gpu)
        dialog.saved.connect(self.apply_settings)
        self.settings_dialog = dialog
        dialog.open()

    @Slot(object)
    def apply_settings(self, settings: Settings) -> None:
        self.settings = settings
        self.theme.set_choice(settings.theme)
        self.status.set_backend(self._backend_choice())
        self.library_state.set_settings(settings)
        self.downloads.apply_settings(settings)
        if self.chat_screen is not None:
            self.chat_screen.apply_settings(settings)
        self.statusBar().showMessage("Settings saved", 4000)

    # ------------------------------------------------------------------ drag and drop anywhere
    def dragEnterEvent(self, event) -> None:
        from app.gui.library.screen import gguf_paths

        if gguf_paths(event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        from app.gui.library.screen import gguf_paths

        paths = gguf_paths(event.mimeData().urls())
        if paths:
            event.acceptProposedAction()
            self.show_screen("library").import_paths(paths)

    # ------------------------------------------------------------------ closing
    def save_window_state(self) -> None:
        built = [slot.screen for slot in self.slots.values() if slot.screen is not None]
        conversation = self.open_conversation_id() if self.chat_screen is not None else False
        self.window_state.save(self, self.current_screen(), built, conversation)

    def closeEvent(self, event) -> None:
        if self._closed:
            return super().closeEvent(event)
        self._closed = True
        statefile.remove_listener(self._notice_listener)
        self.save_window_state()
        self.status.timer.stop()
        if self.chat_screen is not None:
            self.chat_screen.shutdown()
            self.engine.dispose()
            self.chat_store.close()
        self.downloads.shutdown()
        background.wait(10_000)
        super().closeEvent(event)
