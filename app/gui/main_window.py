"""The shell: a sidebar (Chat, Library, Downloads, Settings), the screens, and a status bar.

Start-up is kept short: only the screen shown first is built (the others on first visit), the
library is scanned in the background (`LibraryState`), the download manager comes back after the
window is shown, and llama.cpp never loads on this thread (the chat part's EngineWorker starts
its runner process in the background). Window geometry, the sizes of every named QSplitter and
the last screen are kept in `<data>/window.ini` (under CORRAL_HOME in tests).

The chat part is mounted in ONE place, `_create_chat_screen` (chat_mount.py, a mixin of this
window): the shell owns the ChatStore, the EngineWorker and the Library, hands them to
`ChatScreen`, and disposes of them on close. The chat screen reports through
`engineStatus(dict)` (model, backend, state, progress, tokens/s → the status bar),
`statusMessage(str)` and `libraryRequested()`; the shell calls its `new_chat()`, `focus_search()`,
`chat_with_model(id)`, `refresh_models()`, `apply_settings()` and `shutdown()`.

Start-up never stops on bad state: a chats database that cannot be opened is explained in the
chat's place (chat_mount.py) while the other screens work, and problems with the other state
files (settings.json, library.json… see app.core.statefile) are notices across the top of the
window, kept until dismissed.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from PySide6.QtCore import QEvent, QSettings, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QButtonGroup, QFrame, QHBoxLayout, QLabel, QMainWindow, QSizePolicy,
                               QSplitter, QStackedWidget, QToolButton, QVBoxLayout, QWidget)

from app.core import statefile
from app.core.memory_plan import format_bytes
from app.core.paths import get_paths
from app.core.settings import Settings
from app.gui import background, theme
from app.gui.chat_mount import ChatMountMixin
from app.gui.downloads.worker import DownloadController
from app.gui.library.state import LibraryState
from app.gui.widgets import Banner

SCREENS = ("chat", "library", "downloads")
LABELS = {"chat": "Chat", "library": "Library", "downloads": "Downloads"}


# --------------------------------------------------------------------------- memory use

def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                kids += [int(k) for k in f.read().split()]
    except (OSError, ValueError):
        pass
    return kids


def memory_in_use() -> int | None:
    """Resident memory of Corral: this process plus its children (the llama.cpp runner)."""
    if sys.platform.startswith("linux"):
        me = os.getpid()
        return _rss(me) + sum(_rss(k) for k in _children(me))
    try:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except (ImportError, OSError):
        return None


# --------------------------------------------------------------------------- status bar

class StatusPanel:
    """The status bar's fields; the slots take what the chat part reports."""

    def __init__(self, window: QMainWindow) -> None:
        bar = window.statusBar()
        bar.setSizeGripEnabled(False)
        self.model = QLabel("No model loaded")
        self.model.setObjectName("status-model")
        self.backend = QLabel("")
        self.backend.setObjectName("status-backend")
        self.memory = QLabel("")
        self.memory.setObjectName("status-memory")
        self.speed = QLabel("")
        self.speed.setObjectName("status-speed")
        bar.addWidget(self.model, 1)
        for w in (self.backend, self.memory, self.speed):
            bar.addPermanentWidget(w)
        self.timer = QTimer(window)
        self.timer.setInterval(2000)
        self.timer.timeout.connect(self.update_memory)

    def set_model(self, name: str | None) -> None:
        self.model.setText(f"Model: {name}" if name else "No model loaded")

    def set_backend(self, text: str | None) -> None:
        from app.core.resources import build_info

        info = build_info()  # installers stamp their flavour; a source checkout has none
        flavour = f" · {info['flavour']} build" if info and info.get("flavour") else ""
        self.backend.setText(f"Backend: {text}{flavour}" if text else "")

    def set_tokens_per_second(self, tps: float | None) -> None:
        self.speed.setText(f"{tps:.1f} tok/s" if tps else "")

    def update_memory(self) -> None:
        used = memory_in_use()
        self.memory.setText(f"Memory: {format_bytes(used)}" if used else "")
        self.memory.setToolTip("Corral and its llama.cpp runner, resident in RAM")


# --------------------------------------------------------------------------- the window

class LazySlot(QWidget):
    """A page of the stack whose screen is built the first time it is needed."""

    def __init__(self, build: Callable[[], QWidget], waiting: str = "") -> None:
        super().__init__()
        self._build = build
        self.screen: QWidget | None = None
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._waiting = QLabel(waiting)
        self._waiting.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._waiting.setProperty("role", "muted")
        self._layout.addWidget(self._waiting)

    def ensure(self) -> QWidget:
        if self.screen is None:
            self.screen = self._build()
            self._waiting.hide()
            self._layout.addWidget(self.screen)
        return self.screen


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
        self.window_state = QSettings(str(paths.data / "window.ini"), QSettings.Format.IniFormat)
        self.library_state = LibraryState(self.settings, self)
        self.downloads = DownloadController(self.settings, paths.downloads / "queue.json", self)
        self.chat_screen: QWidget | None = None
        self.chat_store = None
        self.engine = None
        self.welcome: QWidget | None = None
        self.chats_problem: QWidget | None = None  # shown instead of the chat when it cannot open
        self._notices: list[Banner] = []
        self._splitters_restored: set[str] = set()

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        sidebar = self._sidebar()
        sidebar.installEventFilter(self)  # its first paint starts the deferred start-up work
        row.addWidget(sidebar)
        self.notice_box = QWidget()
        self.notice_box.setObjectName("Notices")
        self._notice_layout = QVBoxLayout(self.notice_box)
        self._notice_layout.setContentsMargins(12, 8, 12, 0)
        self._notice_layout.setSpacing(6)
        self.notice_box.hide()
        self.stack = QStackedWidget()
        self.is_ready = False
        self._active_downloads = 0
        self._first_paint = False
        self._closed = False
        self.slots = {"chat": LazySlot(self._build_chat_slot, "Opening your conversations…"),
                      "library": LazySlot(self._build_library),
                      "downloads": LazySlot(self._build_downloads)}
        for name in SCREENS:
            self.stack.addWidget(self.slots[name])
        # Only the screen shown sets the window's minimum size (the chat is wider than the rest).
        self.stack.currentChanged.connect(self._size_to_current)
        self._size_to_current(0)
        column = QVBoxLayout()
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.notice_box)
        column.addWidget(self.stack, 1)
        row.addLayout(column, 1)
        self.setCentralWidget(central)
        self.status = StatusPanel(self)
        self.status.set_backend(self._backend_choice())
        self._shortcuts()
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
        self.theme.changed.connect(self._retint)

        self.resize(1180, 760)
        self._restore_window()
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
        try:
            self.build_screen("chat")  # a chats problem is shown in its place, never raised
        finally:  # whatever happened there, start-up ends and the rest of the window works
            self.is_ready = True
            self.downloads.start_later()
            self.ready.emit()

    # ------------------------------------------------------------------ sidebar
    def _sidebar(self) -> QWidget:
        side = QFrame()
        side.setObjectName("Sidebar")
        side.setFixedWidth(92)
        lay = QVBoxLayout(side)
        lay.setContentsMargins(0, 0, 0, 10)
        lay.setSpacing(2)
        logo = QLabel("Corral")
        logo.setObjectName("SidebarLogo")
        logo.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(logo)
        self.nav = QButtonGroup(self)
        self.nav.setExclusive(True)
        self.nav_buttons: dict[str, QToolButton] = {}
        for i, name in enumerate(SCREENS):
            b = self._side_button(name, LABELS[name], f"Ctrl+{i + 1}")
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, n=name: self.show_screen(n))
            self.nav.addButton(b)
            self.nav_buttons[name] = b
            lay.addWidget(b)
        lay.addStretch(1)
        self.settings_button = self._side_button("settings", "Settings", "Ctrl+,")
        self.settings_button.clicked.connect(self.open_settings)
        lay.addWidget(self.settings_button)
        return side

    def _side_button(self, icon: str, text: str, shortcut: str) -> QToolButton:
        b = QToolButton()
        b.setObjectName(f"nav-{icon}")
        b.setText(text)
        b.setIcon(theme.icon(icon, theme.colors()["muted"]))
        b.setProperty("icon_name", icon)
        b.setIconSize(QSize(24, 24))
        b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
        b.setToolTip(f"{text} ({shortcut})")
        b.setCursor(Qt.CursorShape.PointingHandCursor)
        b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        return b

    def _retint(self, *_: object) -> None:
        c = theme.colors()
        for b in [*self.nav_buttons.values(), self.settings_button]:
            color = c["accent"] if b.isChecked() else c["muted"]
            if b is self.nav_buttons["downloads"]:
                b.setIcon(theme.icon_with_count("downloads", color, self._active_downloads))
            else:
                b.setIcon(theme.icon(b.property("icon_name"), color))

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
        self.nav_buttons[name].setChecked(True)
        self._retint()
        self._restore_splitters(screen)
        return screen

    def build_screen(self, name: str) -> QWidget:
        """The screen `name`, built if it was not yet (without switching to it)."""
        screen = self.slots[name].ensure()
        self._restore_splitters(screen)
        return screen

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

    def _import_from_welcome(self) -> None:
        self.show_screen("library").open_import_dialog()

    def _library_failed(self, text: str) -> None:
        if self.slots["library"].screen is None:  # the Library screen says it itself
            self.add_notice(text, "error")

    # ------------------------------------------------------------------ notices
    @Slot(str)
    def add_notice(self, text: str, kind: str = "info") -> None:
        """A message across the top of the window, kept until dismissed (once per text)."""
        if any(b.text.text() == text and b.isVisible() for b in self._notices):
            return
        banner = Banner()
        self._notice_layout.addWidget(banner)
        self._notices.append(banner)
        banner.show_message(text, kind)
        self.notice_box.show()

    def notices(self) -> list[str]:
        """The notices shown now, oldest first."""
        return [b.text.text() for b in self._notices if not b.isHidden()]

    def _download_badge(self, event: Any) -> None:
        active = sum(1 for j in self.downloads.jobs() if j.state in ("queued", "downloading", "verifying"))
        if active != self._active_downloads:
            self._active_downloads = active
            self.nav_buttons["downloads"].setToolTip(
                f"Downloads: {active} active (Ctrl+3)" if active else "Downloads (Ctrl+3)")
            self._retint()

    def _backend_choice(self) -> str:
        return {"auto": "Auto", "cpu": "CPU", "gpu": "GPU"}[self.settings.backend]

    # ------------------------------------------------------------------ keyboard
    def _shortcuts(self) -> None:
        def add(keys: str, fn: Callable[[], None]) -> None:
            sc = QShortcut(QKeySequence(keys), self)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(fn)

        add("Ctrl+1", lambda: self.show_screen("chat"))
        add("Ctrl+2", lambda: self.show_screen("library"))
        add("Ctrl+3", lambda: self.show_screen("downloads"))
        add("Ctrl+N", self.new_chat)
        add("Ctrl+F", self.focus_search)
        add("Ctrl+,", self.open_settings)

    def new_chat(self) -> None:
        self.show_screen("chat")
        if self.chat_screen is not None and self._chat_slot.currentWidget() is self.chat_screen:
            self.chat_screen.new_chat()

    def focus_search(self) -> None:
        screen = self.slots[self.current_screen()].screen
        if self.current_screen() == "chat":
            screen = self.chat_screen
        fn = getattr(screen, "focus_search", None)
        if fn is not None:
            fn()
        elif self.current_screen() == "downloads":
            self.show_screen("library").focus_search()

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

    # ------------------------------------------------------------------ window state
    def _restore_window(self) -> None:
        s = self.window_state
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if state is not None:
            self.restoreState(state)
        last = s.value("window/screen", "chat")
        last = last if last in SCREENS else "chat"
        if last == "chat":  # built after the first frame (_after_first_paint)
            self.stack.setCurrentWidget(self.slots["chat"])
            self.nav_buttons["chat"].setChecked(True)
            self._retint()
        else:
            self.show_screen(last)

    def _restore_splitters(self, screen: QWidget) -> None:
        for splitter in screen.findChildren(QSplitter):
            name = splitter.objectName()
            if not name or name in self._splitters_restored:
                continue
            self._splitters_restored.add(name)
            sizes = self.window_state.value(f"splitters/{name}")
            if sizes:
                splitter.restoreState(sizes)

    def save_window_state(self) -> None:
        s = self.window_state
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("window/screen", self.current_screen())
        for slot in self.slots.values():
            if slot.screen is None:
                continue
            for splitter in slot.screen.findChildren(QSplitter):
                if splitter.objectName():
                    s.setValue(f"splitters/{splitter.objectName()}", splitter.saveState())
        s.sync()

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
