"""Small widgets the screens share: labels with a style role, badges, a banner, a card grid."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtWidgets import (QFrame, QGridLayout, QHBoxLayout, QLabel, QSizePolicy,
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


class CardGrid(QWidget):
    """Cards in as many columns as fit (`min_width` each), re-flowed when the width changes."""

    def __init__(self, min_width: int = 380, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ScrollBody")
        self.min_width = min_width
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 8, 0)
        self.grid.setSpacing(12)
        self.cards: list[QWidget] = []
        self._columns = 0
        self._watching = False

    def set_cards(self, cards: list[QWidget]) -> None:
        for card in self.cards:
            self.grid.removeWidget(card)
            card.setParent(None)
            card.deleteLater()
        self.cards = list(cards)
        self._columns = 0
        self._reflow()

    def _reflow(self) -> None:
        # The scroll area's viewport sets the width (this widget grows to its cards' minimum).
        width = self.parentWidget().width() if self.parentWidget() is not None else self.width()
        columns = max(1, min(3, (width + self.grid.spacing()) // (self.min_width + self.grid.spacing())))
        if columns == self._columns:
            return
        self._columns = columns
        for card in self.cards:
            self.grid.removeWidget(card)
        for i, card in enumerate(self.cards):
            self.grid.addWidget(card, i // columns, i % columns)
        for c in range(3):
            self.grid.setColumnStretch(c, 1 if c < columns else 0)
        rows = -(-len(self.cards) // columns)
        for r in range(self.grid.rowCount()):
            self.grid.setRowStretch(r, 0)
        self.grid.setRowStretch(rows, 1)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._reflow()

    def showEvent(self, event) -> None:
        super().showEvent(event)
        viewport = self.parentWidget()
        if viewport is not None and not self._watching:
            viewport.installEventFilter(self)
            self._watching = True
        self._reflow()

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Resize:
            self._reflow()
        return False
