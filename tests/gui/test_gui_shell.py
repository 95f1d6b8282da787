"""The window shell: first-run welcome, screens and shortcuts, settings, theme, window state.

Real core objects under a temporary CORRAL_HOME; pytest-qt, offscreen."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QLabel, QPushButton, QSplitter, QWidget

from app.core.settings import Settings, load_settings
from app.gui import theme


def test_first_run_shows_the_welcome(open_window, qtbot):
    window = open_window()
    assert window.windowTitle() == "Corral"
    assert window.current_screen() == "chat"
    # The library is scanned in the background; with nothing in it the welcome appears.
    qtbot.waitUntil(window.showing_welcome)
    texts = " ".join(lbl.text() for lbl in window.welcome.findChildren(QLabel))
    assert "Welcome to Corral" in texts
    assert window.status.model.text() == "No model loaded"


def test_welcome_leads_to_the_catalog(open_window, qtbot):
    window = open_window()
    qtbot.waitUntil(window.showing_welcome)
    window.welcome.findChild(QPushButton, "catalog-button").click()
    assert window.current_screen() == "library"
    library = window.slots["library"].screen
    assert library.tabs.currentIndex() == 1


def test_a_model_replaces_the_welcome_with_the_chat(open_window, qtbot, tiny_model):
    window = open_window()
    qtbot.waitUntil(window.showing_welcome)
    window.build_screen("library").import_paths([tiny_model])
    qtbot.waitUntil(lambda: bool(window.library_state.usable))
    window.show_screen("chat")
    qtbot.waitUntil(lambda: not window.showing_welcome())
    assert window._chat_slot.currentWidget() is window.chat_screen


class WindowsShown(QObject):
    """Every widget shown as a window of its own, while installed on the application."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: list[str] = []

    def eventFilter(self, obj, event):  # noqa: N802
        if event.type() == QEvent.Type.Show and isinstance(obj, QWidget) and obj.isWindow():
            self.shown.append(f"{type(obj).__name__} {obj.objectName()!r}")
        return False


def test_opening_the_window_shows_no_other_window(open_window, qtbot):
    """A widget shown before it has a parent is a window of its own for a moment: a flash on
    the desktop that takes the activation from the main window (keyboard shortcuts then go
    nowhere). Building every screen shows the main window and nothing else."""
    spy = WindowsShown()
    QApplication.instance().installEventFilter(spy)
    try:
        window = open_window()
        qtbot.waitUntil(lambda: window.is_ready, timeout=10_000)
        for name in ("library", "downloads", "chat"):
            window.show_screen(name)
    finally:
        QApplication.instance().removeEventFilter(spy)
    assert spy.shown == ["MainWindow 'MainWindow'"]
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)


def test_shortcuts_switch_screens_and_open_settings(open_window, qtbot):
    window = open_window()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.current_screen() == "library"
    qtbot.keyClick(window, Qt.Key.Key_3, Qt.KeyboardModifier.ControlModifier)
    assert window.current_screen() == "downloads"
    qtbot.keyClick(window, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert window.current_screen() == "chat"
    qtbot.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    library = window.slots["library"].screen
    qtbot.waitUntil(lambda: library.search.hasFocus(), timeout=3000)
    qtbot.keyClick(window, Qt.Key.Key_Comma, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: getattr(window, "settings_dialog", None) is not None
                    and window.settings_dialog.isVisible(), timeout=3000)
    window.settings_dialog.reject()
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert window.current_screen() == "chat"


def test_settings_persist(open_window, qtbot, tmp_path):
    window = open_window()
    window.open_settings()
    dialog = window.settings_dialog
    dialog.models_dir.setText(str(tmp_path / "my models"))
    dialog.backend.setCurrentIndex(dialog.backend.findData("cpu"))
    dialog.threads.setValue(2)
    dialog.context.setValue(2048)
    dialog.token.setText("hf_secret")
    dialog.offline.setChecked(True)
    assert dialog.token.echoMode() == dialog.token.EchoMode.Password
    dialog.accept()
    saved = load_settings()
    assert (saved.models_dir, saved.backend, saved.threads, saved.context_size, saved.hf_token,
            saved.offline) == (str(tmp_path / "my models"), "cpu", 2, 2048, "hf_secret", True)
    assert window.settings == saved
    assert window.library_state.library.models_dir == tmp_path / "my models"
    window.close()
    again = open_window()
    again.open_settings()
    assert again.settings_dialog.models_dir.text() == str(tmp_path / "my models")
    assert again.settings_dialog.offline.isChecked()
    assert again.settings_dialog.backend.currentData() == "cpu"
    again.settings_dialog.reject()


def test_theme_switch_and_follow_the_os(open_window):
    window = open_window()
    window.open_settings()
    dialog = window.settings_dialog
    dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
    assert theme.current() == "dark"  # previewed at once
    dialog.accept()
    assert load_settings().theme == "dark"
    app = QApplication.instance()
    assert app.palette().color(QPalette.ColorRole.Window) == QColor(theme.DARK["window"])
    assert theme.DARK["accent"] in app.styleSheet()
    # Cancel puts the previous theme back.
    window.open_settings()
    window.settings_dialog.theme.setCurrentIndex(window.settings_dialog.theme.findData("light"))
    assert theme.current() == "light"
    window.settings_dialog.reject()
    assert theme.current() == "dark"
    # "system" follows the OS colour scheme (unknown offscreen → light).
    window.apply_settings(Settings(theme="system"))
    assert theme.current() == theme.resolve("system")
    assert app.palette().color(QPalette.ColorRole.Window) == QColor(
        (theme.DARK if theme.current() == "dark" else theme.LIGHT)["window"])


def test_window_state_is_restored(open_window, qtbot):
    window = open_window()
    window.resize(780, 560)  # the offscreen screen is 800 x 600
    qtbot.waitUntil(lambda: window.is_ready)
    size = (window.width(), window.height())
    assert size != (1180, 760)
    # Every named QSplitter keeps its sizes: the chat screen's is "chat-splitter".
    splitter = window.chat_screen.findChild(QSplitter, "chat-splitter")
    splitter.setSizes([300, 400, 0])
    sizes = splitter.sizes()
    window.show_screen("downloads")
    window.close()

    again = open_window()
    assert again.current_screen() == "downloads"
    # Restored, but kept on the screen (the offscreen one is only 800 pixels wide).
    screen_width = again.screen().availableGeometry().width()
    assert again.height() == size[1]
    assert min(size[0], screen_width) - 4 <= again.width() <= min(size[0], screen_width)
    qtbot.waitUntil(lambda: again.is_ready)
    assert again.chat_screen.findChild(QSplitter, "chat-splitter").sizes() == sizes


def test_status_bar_slots(open_window):
    window = open_window()
    window.status.set_model("vicuna-7b-v1.5")
    window.status.set_tokens_per_second(27.34)
    window.status.update_memory()
    assert "vicuna-7b-v1.5" in window.status.model.text()
    assert window.status.speed.text() == "27.3 tok/s"
    assert window.status.memory.text().startswith("Memory: ")
