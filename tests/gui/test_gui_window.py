"""The window under the keyboard and on small screens (issue 17 §4, §5): the menu bar and its
shortcuts, Help → Keyboard shortcuts generated from the actions, Tab reaching the sidebar,
focus never left on a hidden widget, the first window fitting the screen (a 1366×768 laptop
with its taskbar), size and place restored, the open chat reopened, File → Export / Import
chat round trip, and notices and banners that move nothing. pytest-qt, offscreen; real core
objects under a temporary CORRAL_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtWidgets import (QApplication, QDialogButtonBox, QFileDialog, QMessageBox,
                               QPushButton, QStackedWidget, QToolButton)

from app.core.chats import ChatStore
from app.core.paths import get_paths
from app.core.settings import Settings
from app.gui.settings_dialog import SettingsDialog
from app.gui.shell import geometry, menus
from app.gui.shell.geometry import Rect, fit

CTRL = Qt.KeyboardModifier.ControlModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


def active(window, qtbot):
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    return window


@pytest.fixture
def chat_window(open_window, qtbot, tiny_model):
    """A ready window with one model imported and the chat screen shown."""
    window = open_window()
    qtbot.waitUntil(lambda: window.is_ready, timeout=10_000)
    window.build_screen("library").import_paths([tiny_model])
    qtbot.waitUntil(lambda: bool(window.library_state.usable), timeout=20_000)
    window.show_screen("chat")
    qtbot.waitUntil(lambda: not window.showing_welcome(), timeout=10_000)
    return window


# --------------------------------------------------------------------------- the menus

EXPECTED_MENUS = [
    ("File", "New chat", "Ctrl+N"), ("File", "Import model…", "Ctrl+O"),
    ("File", "Import chat…", "Ctrl+Shift+O"), ("File", "Export chat…", "Ctrl+Shift+E"),
    ("File", "Quit", "Ctrl+Q"),
    ("Chat", "Find in conversation", "Ctrl+F"), ("Chat", "Search chats", "Ctrl+Shift+F"),
    ("Chat", "Choose model…", "Ctrl+K"),
    ("View", "Chat", "Ctrl+1"), ("View", "Library", "Ctrl+2"), ("View", "Downloads", "Ctrl+3"),
    ("View", "Settings…", "Ctrl+,"),
    ("Help", "Keyboard shortcuts", "F1"),
]


def test_the_menu_bar_holds_every_command_with_its_keys(open_window):
    window = open_window()
    menus_shown = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus_shown == ["File", "Chat", "View", "Help"]
    rows = menus.shortcut_rows(window)
    assert rows[:len(EXPECTED_MENUS)] == EXPECTED_MENUS
    help_menu = window.menuBar().actions()[3].menu()
    assert [a.text().replace("&", "") for a in help_menu.actions()] == [
        "Keyboard shortcuts", "About Corral"]


def test_each_shortcut_reaches_its_screen_or_handler(chat_window, qtbot):
    window = active(chat_window, qtbot)
    for key, screen in ((Qt.Key.Key_2, "library"), (Qt.Key.Key_3, "downloads"),
                        (Qt.Key.Key_1, "chat")):
        qtbot.keyClick(window, key, CTRL)
        assert window.current_screen() == screen
        assert window.sidebar.buttons[screen].isChecked()
        assert [n for n, b in window.sidebar.buttons.items() if b.isChecked()] == [screen]
    chat = window.chat_screen

    qtbot.keyClick(window, Qt.Key.Key_F, CTRL)  # find in conversation: the bar over it
    qtbot.waitUntil(lambda: chat.find_bar.field.hasFocus(), timeout=3000)
    qtbot.keyClick(chat.find_bar.field, Qt.Key.Key_Escape)
    assert not chat.find_bar.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_2, CTRL)
    qtbot.keyClick(window, Qt.Key.Key_F, CTRL)  # on the Library: its search
    library = window.slots["library"].screen
    qtbot.waitUntil(lambda: library.search.hasFocus(), timeout=3000)
    qtbot.keyClick(window, Qt.Key.Key_F, CTRL | SHIFT)  # search chats: back to the chat
    assert window.current_screen() == "chat"
    qtbot.waitUntil(lambda: chat.conversations.search.hasFocus(), timeout=3000)

    qtbot.keyClick(window, Qt.Key.Key_K, CTRL)  # the model picker, open, typing in its search
    picker = chat.toolbar.picker
    qtbot.waitUntil(lambda: picker.isVisible() and picker.search.hasFocus(), timeout=3000)
    qtbot.keyClick(picker.search, Qt.Key.Key_Escape)
    assert not picker.isVisible()
    qtbot.waitUntil(chat.toolbar.model.hasFocus, timeout=3000)

    qtbot.keyClick(window, Qt.Key.Key_2, CTRL)
    qtbot.keyClick(window, Qt.Key.Key_N, CTRL)
    assert window.current_screen() == "chat"

    qtbot.keyClick(window, Qt.Key.Key_Comma, CTRL)
    qtbot.waitUntil(lambda: getattr(window, "settings_dialog", None) is not None
                    and window.settings_dialog.isVisible(), timeout=3000)
    window.settings_dialog.reject()
    qtbot.keyClick(window, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: getattr(window, "shortcuts_dialog", None) is not None
                    and window.shortcuts_dialog.isVisible(), timeout=3000)
    window.shortcuts_dialog.reject()
    active(window, qtbot)
    qtbot.keyClick(window, Qt.Key.Key_Q, CTRL)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10_000)
    assert window._closed


def test_menu_actions_trigger_their_handlers(chat_window, qtbot, tiny_model, monkeypatch, tmp_path):
    window = chat_window
    actions = window.actions_by_name
    actions["screen_library"].trigger()
    assert window.current_screen() == "library"
    actions["screen_downloads"].trigger()
    assert window.current_screen() == "downloads"
    actions["screen_chat"].trigger()
    assert window.current_screen() == "chat"
    actions["settings"].trigger()
    assert window.settings_dialog.isVisible()
    window.settings_dialog.reject()
    actions["about"].trigger()
    about = window.findChild(QMessageBox, "AboutDialog")
    qtbot.waitUntil(about.isVisible, timeout=3000)
    assert "Corral" in about.text()
    about.accept()
    # Import model…: the file dialog answers with a second model file; it is imported.
    second = tmp_path / "second.gguf"
    second.write_bytes(tiny_model.read_bytes())
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        staticmethod(lambda *a, **k: ([str(second)], "")))
    actions["import_model"].trigger()
    assert window.current_screen() == "library"
    qtbot.waitUntil(lambda: len(window.library_state.usable) == 2, timeout=20_000)
    actions["new_chat"].trigger()
    assert window.current_screen() == "chat"
    actions["shortcuts"].trigger()
    assert window.shortcuts_dialog.isVisible()
    window.shortcuts_dialog.reject()
    actions["quit"].trigger()
    assert window._closed and not window.isVisible()


def test_the_shortcuts_list_is_generated_from_the_actions(chat_window, qtbot):
    window = chat_window
    dialog = window.show_shortcuts()
    rows = dialog.rows()
    assert rows == menus.shortcut_rows(window)
    assert set(EXPECTED_MENUS) <= set(rows)
    # The chat screen's own actions joined the Chat menu with their keys.
    assert ("Chat", "Stop", "Esc") in rows and ("Chat", "Regenerate", "Ctrl+Shift+R") in rows
    dialog.reject()
    # A shortcut added to a menu appears in the list with nothing else to update.
    menu = menus.chat_menu(window)
    extra = menu.addAction("Something new")
    extra.setShortcut("Ctrl+Alt+J")
    assert ("Chat", "Something new", "Ctrl+Alt+J") in window.show_shortcuts().rows()
    window.shortcuts_dialog.reject()


# --------------------------------------------------------------------------- keyboard focus

def tab_chain(window, qtbot, steps: int = 40) -> list:
    seen = []
    for _ in range(steps):
        qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_Tab)
        seen.append(QApplication.focusWidget())
    return seen


def test_tab_reaches_every_sidebar_button_in_order(chat_window, qtbot):
    window = active(chat_window, qtbot)
    window.chat_screen.focus_composer()
    chain = tab_chain(window, qtbot)
    assert all(w is not None and w.isVisible() for w in chain)  # focus never on a hidden widget
    names = [w.objectName() for w in chain]
    sidebar = ["nav-chat", "nav-library", "nav-downloads", "nav-settings"]
    first = names.index("nav-chat")
    assert names[first:first + 4] == sidebar
    # … and from the sidebar on into the chat screen's controls (the composer among them).
    after = chain[first + 4:]
    assert window.chat_screen.composer.edit in after
    # Space on a sidebar button goes to its screen.
    window.sidebar.buttons["library"].setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.keyClick(window.sidebar.buttons["library"], Qt.Key.Key_Space)
    assert window.current_screen() == "library"


def test_focus_is_on_a_visible_widget_after_the_first_import(open_window, qtbot, tiny_model,
                                                             monkeypatch):
    """The user presses the welcome's "Import a GGUF file…" by keyboard; the file is imported;
    the welcome is gone: the focus is on something shown, at every step."""
    window = active(open_window(), qtbot)
    qtbot.waitUntil(window.showing_welcome, timeout=10_000)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames",
                        staticmethod(lambda *a, **k: ([str(tiny_model)], "")))
    button = window.welcome.findChild(QPushButton, "import-button")
    button.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.keyClick(button, Qt.Key.Key_Space)
    assert window.current_screen() == "library"
    qtbot.waitUntil(lambda: bool(window.library_state.usable), timeout=20_000)
    focus = window.focusWidget()
    assert focus is not None and focus.isVisible() and focus is not button
    qtbot.keyClick(window, Qt.Key.Key_1, CTRL)
    qtbot.waitUntil(lambda: not window.showing_welcome(), timeout=10_000)
    focus = window.focusWidget()
    assert focus is window.chat_screen.composer.edit and focus.isVisible()


# --------------------------------------------------------------------------- screen geometry

LAPTOP = Rect(0, 0, 1366, 728)        # 1366×768 less a 40 px taskbar at the bottom
FRAME = (1, 37, 1, 1)                  # a GNOME-like title bar


def frame_rect(client: Rect, frame=FRAME) -> Rect:
    left, top, right, bottom = frame
    return Rect(client.x - left, client.y - top, client.w + left + right, client.h + top + bottom)


def inside(outer: Rect, r: Rect) -> bool:
    return (r.x >= outer.x and r.y >= outer.y and r.x + r.w <= outer.x + outer.w
            and r.y + r.h <= outer.y + outer.h)


def test_the_first_window_fits_a_1366x768_laptop_with_its_taskbar():
    first = fit(LAPTOP, FRAME)
    assert inside(LAPTOP, frame_rect(first))
    assert (first.w, first.h) == (1180, 728 - 38)  # as tall as fits under the title bar
    assert first.x == 1 + (1364 - 1180) // 2  # centred across
    # A big screen: the preferred size, centred; a panel on the left is kept clear of.
    big = Rect(64, 0, 1856, 1080)
    r = fit(big, FRAME)
    assert (r.w, r.h) == geometry.PREFERRED and inside(big, frame_rect(r))
    # A restored window larger than today's screen shrinks; one off screen comes back.
    assert inside(LAPTOP, frame_rect(fit(LAPTOP, FRAME, current=Rect(100, 50, 1800, 1000))))
    back = fit(LAPTOP, FRAME, current=Rect(3000, -200, 900, 600))
    assert (back.w, back.h) == (900, 600) and inside(LAPTOP, frame_rect(back))
    # One that fits stays where it was, its size kept.
    assert fit(LAPTOP, FRAME, current=Rect(200, 100, 900, 600)) == Rect(200, 100, 900, 600)
    # On a second screen to the right.
    right = Rect(1366, 0, 1920, 1040)
    assert inside(right, frame_rect(fit(right, FRAME, current=Rect(1300, 10, 1000, 700))))
    # A window that cannot be made smaller than its minimum keeps it (the title bar on screen).
    small = fit(Rect(0, 0, 800, 600), FRAME, minimum=(823, 367))
    assert small.w == 823 and small.y >= 37 and small.x >= 1


def run_window(home, screen: tuple[int, int], script: str = "") -> dict:
    """Start the window as `corral gui` does, offscreen on a screen of `screen` pixels (Qt's
    offscreen platform reads it from a config file); returns what the child printed."""
    config = home / f"screen-{screen[0]}x{screen[1]}.json"
    home.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"screens": [{"name": "s", "x": 0, "y": 0, "width": screen[0],
                                               "height": screen[1]}]}))
    code = ("import json, sys\n"
            "from PySide6.QtCore import QTimer\n"
            "from app.gui.app import create_window\n"
            "app, w = create_window()\n"
            "w.show()\n"
            f"{script}\n"
            "def done():\n"
            "    f, g = w.frameGeometry(), w.geometry()\n"
            "    a = w.screen().availableGeometry()\n"
            "    print(json.dumps({'frame': f.getRect(), 'client': g.getRect(),\n"
            "                      'available': a.getRect()}), flush=True)\n"
            "    w.close(); app.quit()\n"
            "w.ready.connect(lambda: QTimer.singleShot(0, done))\n"
            "sys.exit(app.exec())\n")
    env = dict(os.environ, CORRAL_HOME=str(home), QT_QPA_PLATFORM=f"offscreen:configfile={config}")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120, cwd=os.getcwd())
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_the_real_window_fits_the_screen_and_comes_back_clamped(tmp_path):
    home = tmp_path / "home"
    first = run_window(home, (1366, 728))
    available = Rect(*first["available"])
    assert available == Rect(0, 0, 1366, 728)
    assert inside(available, Rect(*first["frame"]))
    assert Rect(*first["client"]).w == 1180
    # Made big on a big screen, then started on the laptop: it comes back inside it.
    big = run_window(home, (2560, 1440), "w.setGeometry(100, 100, 2000, 1200)")
    assert Rect(*big["client"])[2:] == (2000, 1200)
    again = run_window(home, (1366, 728))
    assert inside(Rect(*again["available"]), Rect(*again["frame"]))


def test_size_and_place_are_restored(open_window, qtbot):
    window = open_window()
    qtbot.waitUntil(lambda: window.is_ready, timeout=10_000)
    window.show_screen("library")  # the chat screen needs more than the 800 px offscreen screen
    qtbot.waitUntil(lambda: window.minimumWidth() <= 700, timeout=3000)  # its layout, applied
    window.setGeometry(40, 60, 700, 540)
    qtbot.waitUntil(lambda: window.geometry().getRect() == (40, 60, 700, 540), timeout=3000)
    window.close()
    again = open_window()
    assert again.geometry().getRect() == (40, 60, 700, 540)


# --------------------------------------------------------------------------- reopen, import, export

def test_the_open_chat_is_reopened_and_a_deleted_one_falls_back(chat_window, open_window, qtbot):
    window = chat_window
    store = window.chat_store
    model = window.library_state.usable[0].model.id
    older = store.create_conversation(title="Older one", model_id=model)
    store.add_message(older.id, "user", "first")
    newer = store.create_conversation(title="Newer one", model_id=model)
    store.add_message(newer.id, "user", "second")
    window.chat_screen.open_conversation(older.id)
    assert window.chat_screen.current_conversation_id() == older.id
    window.close()

    again = open_window()
    qtbot.waitUntil(lambda: again.is_ready and again.chat_screen is not None, timeout=10_000)
    assert again.chat_screen.current_conversation_id() == older.id  # not the most recent
    ChatStore(get_paths().chats_db).delete_conversation(older.id)  # gone before the next start
    again.close()

    third = open_window()
    qtbot.waitUntil(lambda: third.is_ready and third.chat_screen is not None, timeout=10_000)
    assert third.chat_screen.current_conversation_id() == newer.id
    # Started on the chat: the keyboard is in the message field, ready to type.
    qtbot.waitUntil(lambda: third.focusWidget() is third.chat_screen.composer.edit, timeout=3000)
    banner = third.chat_screen.error_banner
    assert not banner.isVisibleTo(third.chat_screen), banner.label.text()
    assert third.notices() == []


def test_the_chat_to_reopen_is_kept_while_the_chats_cannot_be_opened(open_window, qtbot):
    from PySide6.QtCore import QSettings

    paths = get_paths()
    paths.data.mkdir(parents=True, exist_ok=True)
    ini = QSettings(str(paths.data / "window.ini"), QSettings.Format.IniFormat)
    ini.setValue("chat/conversation", 5)
    ini.sync()
    paths.chats_db.parent.mkdir(parents=True, exist_ok=True)
    paths.chats_db.write_bytes(b"not a database" * 100)
    window = open_window()
    qtbot.waitUntil(lambda: window.is_ready, timeout=10_000)
    assert window.chat_screen is None and window.chats_problem is not None
    window.close()
    ini = QSettings(str(paths.data / "window.ini"), QSettings.Format.IniFormat)
    assert ini.value("chat/conversation") in (5, "5")


CODE = "```python\nprint('héllo 🐄')\n```"


def test_export_then_import_through_the_window(chat_window, qtbot, monkeypatch, tmp_path):
    window = chat_window
    store = window.chat_store
    conv = store.create_conversation(title="Ünïcødé & code 🐄",
                                     model_id=window.library_state.usable[0].model.id,
                                     params={"temperature": 0.4}, options={"stop": ["###"]})
    store.add_message(conv.id, "user", f"Explain — naïve café:\n\n{CODE}")
    store.add_message(conv.id, "assistant", f"Voilà 日本語:\n\n{CODE}",
                      stats={"generated_tokens": 9, "stop_reason": "eos"})
    window.chat_screen.open_conversation(conv.id)
    out = tmp_path / "exported.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a, **k: (str(out), "JSON (*.json)")))
    window.actions_by_name["export_chat"].trigger()
    assert json.loads(out.read_text(encoding="utf-8"))["title"] == "Ünïcødé & code 🐄"

    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(out), "")))
    window.show_screen("library")
    window.actions_by_name["import_chat"].trigger()
    new_id = window.chat_screen.current_conversation_id()
    assert window.current_screen() == "chat" and new_id not in (None, conv.id)

    def comparable(data):
        data = {k: v for k, v in data.items() if k not in ("id", "created", "updated")}
        data["messages"] = [{k: v for k, v in m.items() if k not in ("id", "created")}
                            for m in data["messages"]]
        return data

    assert comparable(store.export_json(new_id)) == comparable(store.export_json(conv.id))
    assert window.chat_screen.conversations.current_id() == new_id  # listed, and open

    damaged = tmp_path / "damaged.json"
    damaged.write_bytes(out.read_bytes()[:150])
    count = store.count()
    assert window.import_chat(str(damaged)) is None
    box = window.chat_file_message
    qtbot.waitUntil(box.isVisible, timeout=3000)
    assert box.text().startswith(f"Not imported: {damaged}: is not valid JSON")
    assert store.count() == count
    box.accept()


# --------------------------------------------------------------------------- nothing moves

def positions(window) -> dict:
    chat = window.chat_screen
    QApplication.processEvents()
    return {name: (w.mapTo(window, QPoint(0, 0)).y(), w.height()) for name, w in (
        ("toolbar", chat.toolbar), ("conversation", chat.stack), ("composer", chat.composer),
        ("sidebar", window.sidebar))}


def test_notices_and_banners_do_not_move_the_screens(chat_window, qtbot):
    window = chat_window
    before = positions(window)
    window.add_notice("settings.json could not be read; it was kept as settings.json.damaged",
                      "error")
    qtbot.waitUntil(lambda: window.notice_box.isVisible(), timeout=3000)
    assert positions(window) == before
    banner = window._notices[-1]
    assert banner.isVisible() and banner.mapTo(window, QPoint(0, 0)).y() >= 0
    banner.hide()  # dismissed
    qtbot.waitUntil(lambda: not window.notice_box.isVisible(), timeout=3000)
    assert positions(window) == before

    chat = window.chat_screen
    chat.context_banner.show_message("The last message alone needs 9,999 tokens; the model's "
                                     "context holds 512. Shorten it.", "error")
    qtbot.waitUntil(chat.context_banner.isVisible, timeout=3000)
    assert positions(window) == before
    # The banner sits over the foot of the conversation, just above the composer.
    bottom = chat.context_banner.mapTo(window, QPoint(0, chat.context_banner.height())).y()
    assert before["composer"][0] - 12 <= bottom <= before["composer"][0]
    chat.context_banner.hide()
    assert positions(window) == before


def frame(widget) -> tuple[int, int, int, int]:
    """Where `widget` is in its window, to the pixel: x, y, width, height."""
    QApplication.processEvents()
    corner = widget.mapTo(widget.window(), QPoint(0, 0))
    return corner.x(), corner.y(), widget.width(), widget.height()


def rect(widget) -> QRect:
    return QRect(*frame(widget))


def banner_case(window, name):
    """(screen, the widget under its banner, what the banner floats over and at which edge, the
    widgets it must leave in sight)."""
    if name == "library":
        screen = window.show_screen(name)
        pages = screen.tabs.findChild(QStackedWidget)   # under the tab bar, over the table's top
        return screen, screen.installed.table, pages, "top", [
            screen.search, screen.copy_files, screen.import_button, screen.tabs.tabBar(),
            screen.installed.card]   # the selected model's card and its Chat and Delete buttons
    if name == "downloads":
        screen = window.show_screen(name)
        return screen, screen.scroll, screen.scroll, "bottom", [screen.summary]
    window.open_settings()
    screen = window.settings_dialog   # over its title
    return screen, screen.general, screen, "top", [screen.tabs, screen.findChild(QDialogButtonBox)]


@pytest.mark.parametrize("name", ["library", "downloads", "settings"])
def test_library_downloads_and_settings_banners_move_nothing(chat_window, qtbot, name):
    window = chat_window
    screen, content, over, edge, kept = banner_case(window, name)
    qtbot.waitUntil(content.isVisible, timeout=10_000)
    assert None not in kept
    screen.banner.hide()   # the library still says "Added corral-tiny…"
    before = frame(content)
    said = "Not saved: [Errno 13] Permission denied: '/home/u/.corral/settings.json'"
    screen.banner.show_message(said, "error")
    qtbot.waitUntil(screen.banner.isVisible, timeout=3000)
    assert frame(content) == before
    assert screen.banner.kind == "error" and screen.banner.text.text() == said
    assert screen.banner.property("banner") == "error"

    def floats_in_place() -> None:
        """Inside what it covers, at its edge, hiding none of `kept`."""
        banner, area = rect(screen.banner), rect(over)
        assert area.contains(banner)
        gap = banner.top() - area.top() if edge == "top" else area.bottom() - banner.bottom()
        assert 0 <= gap <= 12
        assert [w.objectName() or type(w).__name__ for w in kept
                if rect(w).intersects(banner)] == []

    floats_in_place()
    if name == "library":   # an import starts: its progress panel pushes the tabs down, and
        screen.imports.show()   # the banner follows the pages
        assert frame(content)[1] > before[1]
        floats_in_place()
        screen.imports.hide()
        assert frame(content) == before
    screen.banner.show_message("Reworded, and much longer: " + said * 3, "info")
    assert frame(content) == before
    close = screen.banner.findChild(QToolButton)
    qtbot.mouseClick(close, Qt.MouseButton.LeftButton)   # dismissed with ×
    qtbot.waitUntil(lambda: not screen.banner.isVisible(), timeout=3000)
    assert frame(content) == before
    if name == "settings":
        screen.reject()


def test_a_dialog_deleted_with_its_banner_up_raises_nothing(home, qtbot):
    """Deleting a widget hides it, then its children, after their Python wrappers are gone: the
    banner's overlay must not reach for them (RuntimeError in the Qt event loop)."""
    dialog = SettingsDialog(Settings())
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.banner.show_message("Not saved: [Errno 28] No space left on device", "error")
    qtbot.waitUntil(dialog.banner.isVisible, timeout=3000)
    with qtbot.captureExceptions() as caught, qtbot.waitSignal(dialog.destroyed, timeout=3000):
        dialog.deleteLater()
    assert caught == []
