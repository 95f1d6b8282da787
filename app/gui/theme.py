"""Light and dark themes: the Fusion style, a palette per theme and a small style sheet.

The theme is "system" (follow the OS: Qt 6.5+ `QStyleHints.colorScheme()`, re-applied when the
OS switches), "light" or "dark" (Settings → Theme). Widgets take their colours from the palette
(`QPalette`), so the chat part and every screen follow without knowing about themes; the few
colours a palette has no role for (badges, banners, the sidebar) come from `colors()` and the
style sheet `resources/styles/corral.qss`, whose `@name` tokens are filled from the same table.
Icons are SVG files in `resources/styles/icons/` drawn with `currentColor`, tinted per theme.
"""

from __future__ import annotations

import re
from functools import lru_cache

from PySide6.QtCore import QByteArray, QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtWidgets import QApplication

from app.core.resources import resource_path

THEMES = ("system", "light", "dark")

LIGHT = {
    "window": "#f5f6f8", "base": "#ffffff", "alt": "#f0f2f5", "text": "#1c1f24",
    "muted": "#6b7280", "border": "#dde1e7", "button": "#ffffff", "hover": "#eceff3",
    "accent": "#2563eb", "accent_text": "#ffffff", "accent_soft": "#dbe6fd",
    "sidebar": "#eceef2", "card": "#ffffff",
    "ok": "#15803d", "ok_soft": "#dcf3e4", "warn": "#a16207", "warn_soft": "#fbf0cf",
    "bad": "#b91c1c", "bad_soft": "#fbe1e1", "info_soft": "#e3ecfd",
}
DARK = {
    "window": "#1b1d21", "base": "#23262b", "alt": "#2a2d33", "text": "#e7e9ec",
    "muted": "#9399a3", "border": "#363a41", "button": "#2c3036", "hover": "#33373e",
    "accent": "#5b8def", "accent_text": "#ffffff", "accent_soft": "#27385c",
    "sidebar": "#16181b", "card": "#23262b",
    "ok": "#4ade80", "ok_soft": "#1d3a2a", "warn": "#facc15", "warn_soft": "#3d3418",
    "bad": "#f87171", "bad_soft": "#442426", "info_soft": "#223352",
}


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def resolve(choice: str) -> str:
    """"light" or "dark" for a Settings choice ("system" asks the OS; unknown → light)."""
    if choice == "dark" or (choice == "system" and system_is_dark()):
        return "dark"
    return "light"


def palette_for(colors: dict[str, str]) -> QPalette:
    c = {k: QColor(v) for k, v in colors.items()}
    p = QPalette()
    R = QPalette.ColorRole
    for role, key in ((R.Window, "window"), (R.WindowText, "text"), (R.Base, "base"),
                      (R.AlternateBase, "alt"), (R.Text, "text"), (R.Button, "button"),
                      (R.ButtonText, "text"), (R.ToolTipBase, "base"), (R.ToolTipText, "text"),
                      (R.Highlight, "accent"), (R.HighlightedText, "accent_text"),
                      (R.PlaceholderText, "muted"), (R.Link, "accent"), (R.BrightText, "bad"),
                      (R.Accent, "accent")):
        p.setColor(role, c[key])
    dark = c["window"].lightness() < 128
    p.setColor(R.Light, c["base"].lighter(115) if dark else QColor("#ffffff"))
    p.setColor(R.Midlight, c["border"].lighter(110))
    p.setColor(R.Mid, c["border"])
    p.setColor(R.Dark, c["border"].darker(130))
    p.setColor(R.Shadow, QColor(0, 0, 0, 90))
    p.setColor(R.LinkVisited, c["accent"].darker(115))
    G = QPalette.ColorGroup.Disabled
    for role in (R.WindowText, R.Text, R.ButtonText):
        p.setColor(G, role, c["muted"])
    p.setColor(G, R.Button, c["alt"])
    p.setColor(G, R.Highlight, c["border"])
    return p


@lru_cache(maxsize=1)
def _qss_template() -> str:
    return resource_path("styles", "corral.qss").read_text(encoding="utf-8")


def style_sheet(colors: dict[str, str]) -> str:
    return re.sub(r"@([a-z_]+)", lambda m: colors.get(m.group(1), m.group(0)), _qss_template())


@lru_cache(maxsize=64)
def _svg(name: str) -> bytes:
    return resource_path("styles", "icons", f"{name}.svg").read_bytes()


def icon(name: str, color: str | None = None, size: int = 40) -> QIcon:
    """An icon from resources/styles/icons drawn in `color` (default: the theme's text colour)."""
    color = color or colors()["text"]
    data = _svg(name).replace(b"currentColor", color.encode())
    pixmap = QPixmap()
    pixmap.loadFromData(QByteArray(data), "SVG")
    if pixmap.isNull():  # no SVG plugin: an empty icon rather than a crash
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
    elif pixmap.width() != size:
        pixmap = _render(data, size)
    return QIcon(pixmap)


def icon_with_count(name: str, color: str, count: int, size: int = 40) -> QIcon:
    """The icon with a small round count in its top-right corner (e.g. active downloads)."""
    base = icon(name, color, size).pixmap(size, size)
    if count <= 0:
        return QIcon(base)
    painter = QPainter(base)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    d = size * 0.5
    rect = base.rect().adjusted(int(size - d), 0, 0, -int(size - d))
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(colors()["accent"]))
    painter.drawEllipse(rect)
    font = painter.font()
    font.setPixelSize(int(d * 0.62))
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor(colors()["accent_text"]))
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, str(count) if count < 10 else "9+")
    painter.end()
    return QIcon(base)


def _render(data: bytes, size: int) -> QPixmap:
    from PySide6.QtSvg import QSvgRenderer  # only when the plain load gave another size

    renderer = QSvgRenderer(QByteArray(data))
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    renderer.render(painter)
    painter.end()
    return pixmap


class ThemeManager(QObject):
    """Applies the chosen theme to the application and follows the OS while it is "system"."""

    changed = Signal(str)  # "light" | "dark"

    _instance: "ThemeManager | None" = None

    def __init__(self, app: QApplication, choice: str = "system") -> None:
        super().__init__(app)
        self.app = app
        self.choice = choice if choice in THEMES else "system"
        self.current = ""
        app.setStyle("Fusion")
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._os_changed)
        ThemeManager._instance = self
        self.apply()

    @classmethod
    def instance(cls) -> "ThemeManager | None":
        return cls._instance

    def set_choice(self, choice: str) -> None:
        self.choice = choice if choice in THEMES else "system"
        self.apply()

    def _os_changed(self, *_: object) -> None:
        if self.choice == "system":
            self.apply()

    def apply(self) -> None:
        name = resolve(self.choice)
        table = LIGHT if name == "light" else DARK
        self.app.setPalette(palette_for(table))
        self.app.setStyleSheet(style_sheet(table))
        changed = name != self.current
        self.current = name
        if changed:
            self.changed.emit(name)


def ensure(choice: str | None = None) -> ThemeManager:
    """The application's ThemeManager (made on first use); `choice` changes the theme."""
    app = QApplication.instance()
    manager = ThemeManager._instance
    if manager is None or manager.app is not app:
        return ThemeManager(app, choice or "system")
    if choice is not None and choice != manager.choice:
        manager.set_choice(choice)
    return manager


def current() -> str:
    manager = ThemeManager.instance()
    return manager.current if manager is not None and manager.current else "light"


def colors() -> dict[str, str]:
    return DARK if current() == "dark" else LIGHT
