"""The sidebar (Chat, Library, Downloads … Settings) and the lazily built pages of the stack.

Every sidebar button takes Tab focus, in reading order (a QButtonGroup would let Tab stop on
the checked button only, and the others are reached with arrow keys no one guesses), and shows
where the focus is; which one is checked is kept here, one at a time."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from app.gui import theme


class Sidebar(QFrame):
    screenChosen = Signal(str)
    settingsRequested = Signal()

    def __init__(self, screens: dict[str, str], parent: QWidget | None = None) -> None:
        """`screens`: name → label, top to bottom."""
        super().__init__(parent)
        self.setObjectName("Sidebar")
        self.setFixedWidth(92)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 10)
        lay.setSpacing(2)
        logo = QLabel("Corral")
        logo.setObjectName("SidebarLogo")
        logo.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(logo)
        self.buttons: dict[str, QToolButton] = {}
        for name, text in screens.items():
            b = self._button(name, text)
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, n=name: self.screenChosen.emit(n))
            self.buttons[name] = b
            lay.addWidget(b)
        lay.addStretch(1)
        self.settings_button = self._button("settings", "Settings")
        self.settings_button.clicked.connect(self.settingsRequested)
        lay.addWidget(self.settings_button)
        self.badge = 0  # active downloads, drawn on the Downloads icon
        self._keys: dict[str, str] = {}

    def _button(self, icon: str, text: str) -> QToolButton:
        b = QToolButton()
        b.setObjectName(f"nav-{icon}")
        b.setText(text)
        b.setAccessibleName(text)
        b.setIcon(theme.icon(icon, theme.colors()["muted"]))
        b.setProperty("icon_name", icon)
        b.setIconSize(QSize(24, 24))
        b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
        b.setCursor(Qt.CursorShape.PointingHandCursor)
        b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        b.setFocusPolicy(Qt.FocusPolicy.TabFocus)  # by keyboard; a click leaves focus where it was
        return b

    def all_buttons(self) -> list[QToolButton]:
        return [*self.buttons.values(), self.settings_button]

    def set_shortcuts(self, keys: dict[str, str]) -> None:
        """Tooltips from the actions' shortcuts (a screen's name or "settings" → "Ctrl+1")."""
        self._keys = dict(keys)
        self._tooltips()

    def _tooltips(self) -> None:
        for b in self.all_buttons():
            name = b.property("icon_name")
            text = b.text()
            if name == "downloads" and self.badge:
                text += f": {self.badge} active"
            shortcut = self._keys.get(name)
            b.setToolTip(f"{text} ({shortcut})" if shortcut else text)

    def set_current(self, name: str) -> None:
        for key, b in self.buttons.items():
            b.setChecked(key == name)
        self.retint()

    def set_badge(self, count: int) -> None:
        """`count` active downloads, on the Downloads icon and in its tooltip."""
        if count != self.badge:
            self.badge = count
            self._tooltips()
            self.retint()

    def retint(self, *_: object) -> None:
        c = theme.colors()
        for b in self.all_buttons():
            color = c["accent"] if b.isChecked() else c["muted"]
            if b is self.buttons.get("downloads"):
                b.setIcon(theme.icon_with_count("downloads", color, self.badge))
            else:
                b.setIcon(theme.icon(b.property("icon_name"), color))


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
