"""The menu bar and every window-wide shortcut, from one table (`COMMANDS`).

Each command is a QAction in a menu *and* on the window itself, so its shortcut works on every
screen (and on platforms whose menu bar lives outside the window). The list in Help → Keyboard
shortcuts is generated from the actions of the menu bar, so it cannot drift from the keys.
The chat screen's own actions (Stop, Regenerate, the side panel…) join the Chat menu when the
chat screen is built (`add_chat_actions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QMainWindow, QMenu,
                               QMessageBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from app import __version__

@dataclass(frozen=True)
class Command:
    name: str          # the handler's key (MainWindow.commands()), and the action's objectName
    menu: str
    text: str
    keys: object       # a portable string ("Ctrl+K"), a QKeySequence.StandardKey, or None
    tip: str = ""
    separator_before: bool = False


COMMANDS: tuple[Command, ...] = (
    Command("new_chat", "&File", "&New chat", QKeySequence.StandardKey.New),
    Command("import_model", "&File", "&Import model…", QKeySequence.StandardKey.Open,
            "Add a GGUF file you already have to the Library", separator_before=True),
    Command("import_chat", "&File", "Import c&hat…", "Ctrl+Shift+O",
            "Add a conversation exported as JSON"),
    Command("export_chat", "&File", "&Export chat…", "Ctrl+Shift+E",
            "Save the open conversation as Markdown or JSON"),
    Command("quit", "&File", "&Quit", "Ctrl+Q", separator_before=True),
    Command("find", "&Chat", "&Find in conversation", QKeySequence.StandardKey.Find,
            "Find text in your conversations (in the Library: search models)"),
    Command("search_chats", "&Chat", "&Search chats", "Ctrl+Shift+F",
            "Search the list of conversations"),
    Command("choose_model", "&Chat", "Choose &model…", "Ctrl+K",
            "Open the model picker of this conversation"),
    Command("screen_chat", "&View", "&Chat", "Ctrl+1"),
    Command("screen_library", "&View", "&Library", "Ctrl+2"),
    Command("screen_downloads", "&View", "&Downloads", "Ctrl+3"),
    Command("settings", "&View", "&Settings…", "Ctrl+,", separator_before=True),
    Command("shortcuts", "&Help", "&Keyboard shortcuts", QKeySequence.StandardKey.HelpContents),
    Command("about", "&Help", "&About Corral", None),
)


def build(window: QMainWindow, handlers: dict[str, Callable[[], None]]) -> dict[str, QAction]:
    """The menu bar of `window` from COMMANDS; `handlers` maps each command's name to what it
    does. The actions, by name."""
    bar = window.menuBar()
    menus: dict[str, QMenu] = {}
    actions: dict[str, QAction] = {}
    for c in COMMANDS:
        menu = menus.get(c.menu) or menus.setdefault(c.menu, bar.addMenu(c.menu))
        if c.separator_before:
            menu.addSeparator()
        action = QAction(c.text, window)
        action.setObjectName(f"action-{c.name}")
        if c.keys is not None:
            action.setShortcut(QKeySequence(c.keys))  # a standard key: its first binding
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if c.tip:
            action.setStatusTip(c.tip)
            action.setToolTip(c.tip)
        action.triggered.connect(lambda _=False, fn=handlers[c.name]: fn())
        if c.name == "quit":
            action.setMenuRole(QAction.MenuRole.QuitRole)
        elif c.name == "settings":
            action.setMenuRole(QAction.MenuRole.PreferencesRole)
        elif c.name == "about":
            action.setMenuRole(QAction.MenuRole.AboutRole)
        menu.addAction(action)
        window.addAction(action)  # works while the menu bar is hidden or native
        actions[c.name] = action
    return actions


def add_chat_actions(window: QMainWindow, chat_actions: list[QAction]) -> None:
    """The chat screen's own actions at the end of the Chat menu (their shortcuts keep the chat
    screen's context: Esc stops a reply only where the chat has the focus)."""
    menu = chat_menu(window)
    if menu is None or not chat_actions:
        return
    menu.addSeparator()
    for action in chat_actions:
        menu.addAction(action)


def chat_menu(window: QMainWindow) -> QMenu | None:
    for action in window.menuBar().actions():
        if action.text().replace("&", "") == "Chat":
            return action.menu()
    return None


def shortcut_text(action: QAction) -> str:
    return ", ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts())


def shortcut_rows(window: QMainWindow) -> list[tuple[str, str, str]]:
    """(menu, command, keys) for every action of the menu bar that has a shortcut, in menu
    order: what Help → Keyboard shortcuts lists."""
    rows = []
    for top in window.menuBar().actions():
        menu = top.menu()
        if menu is None:
            continue
        for action in menu.actions():
            if action.isSeparator() or not action.shortcuts():
                continue
            rows.append((top.text().replace("&", ""), action.text().replace("&", ""),
                         shortcut_text(action)))
    return rows


class ShortcutsDialog(QDialog):
    """Help → Keyboard shortcuts: every shortcut of the menus, generated from the actions."""

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.setObjectName("ShortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        rows = shortcut_rows(window)
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["Menu", "Command", "Keys"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for c in (0, 2):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.table)
        lay.addWidget(buttons)
        self.resize(520, min(640, 120 + 30 * len(rows)))

    def rows(self) -> list[tuple[str, str, str]]:
        return [tuple(self.table.item(r, c).text() for c in range(3))
                for r in range(self.table.rowCount())]


def about(parent: QWidget) -> QMessageBox:
    from app.core.resources import version_label

    box = QMessageBox(QMessageBox.Icon.NoIcon, "About Corral",
                      f"<b>Corral</b> {version_label(__version__)}<br><br>Run LLaMA-family "
                      "language models on your own computer: the models, your conversations "
                      "and their replies stay on it.<br><br>llama.cpp through "
                      "llama-cpp-python · Qt through PySide6", QMessageBox.StandardButton.Ok,
                      parent)
    box.setObjectName("AboutDialog")
    box.setIconPixmap(parent.windowIcon().pixmap(64, 64))
    box.open()
    return box
