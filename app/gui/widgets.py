"""Small widgets the screens share: labels with a style role, badges, a banner."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QSizePolicy,
                               QToolButton, QWidget)


def repolish(widget: QWidget) -> None:
    """Re-apply the style sheet after a dynamic property changed."""
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)


def label(text: str = "", *, role: str | None = None, wrap: bool = False,
          selectable: bool = False) -> QLabel:
    lab = QLabel(text)
    if role:
        lab.setProperty("role", role)
    if wrap:
        lab.setWordWrap(True)
    if selectable:
        lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return lab


def badge(text: str, kind: str = "neutral", tooltip: str | None = None) -> QLabel:
    """A small rounded tag: kind is neutral | accent | ok | warn | bad."""
    lab = QLabel(text)
    lab.setProperty("badge", kind)
    lab.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    if tooltip:
        lab.setToolTip(tooltip)
    return lab


class Banner(QFrame):
    """A message across the top of a screen (error, info or ok); closes with ×, never modal."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Banner")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 8, 8, 8)
        self.text = QLabel()
        self.text.setObjectName("BannerText")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.text, 1)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        lay.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)
        self.kind = ""
        self.hide()

    def show_message(self, text: str, kind: str = "info", timeout_ms: int = 0) -> None:
        """Errors stay until dismissed; info and ok messages may fade after `timeout_ms`."""
        self.kind = kind
        self.text.setText(text)
        self.setProperty("banner", kind)
        repolish(self)
        self.show()
        if timeout_ms and kind != "error":
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()
