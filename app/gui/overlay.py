"""Messages that float over an edge of a widget instead of pushing it: `EdgeOverlay`.

A banner put in a layout moves everything under it when it appears and again when it hides
(the window's notices moved the whole screen by 43 px, the chat's banners resized the
conversation by 28–49 px). An EdgeOverlay is a child of `host` placed in front of the top or
bottom edge of `anchor` (a widget inside `host`): it is never in a layout, so showing, hiding
or rewording a banner in it moves nothing. It is as tall as its visible widgets need at its
width and hidden when none is visible, so it covers no more than the banners themselves.

    notices = EdgeOverlay(host=column, anchor=stack, edge="top")
    notices.add(banner)          # banner.show() / hide() as before

`float_banners` is how a screen (the chat, the Library, Downloads, Settings) floats its banners
over an edge of its content (a conversation, a table, a list, a form), which a banner in the
layout moved by 49 px.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPoint, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget


# A banner shown or hidden sends ShowToParent / HideToParent even while the overlay is hidden.
_PLACE_ON = (QEvent.Type.Resize, QEvent.Type.Move, QEvent.Type.Show, QEvent.Type.Hide,
             QEvent.Type.ShowToParent, QEvent.Type.HideToParent, QEvent.Type.LayoutRequest)


class EdgeOverlay(QWidget):
    heightChanged = Signal(int)   # the height it covers now (0 when hidden)

    def __init__(self, host: QWidget, anchor: QWidget, edge: str = "top", *,
                 margins: tuple[int, int, int, int] = (12, 8, 12, 8), spacing: int = 6) -> None:
        super().__init__(host)
        if edge not in ("top", "bottom"):
            raise ValueError(f"edge must be 'top' or 'bottom', not {edge!r}")
        self.setObjectName("EdgeOverlay")
        self.host, self.anchor, self.edge = host, anchor, edge
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(*margins)
        self._layout.setSpacing(spacing)
        self._covered = 0
        anchor.installEventFilter(self)
        if anchor is not host:
            host.installEventFilter(self)
        self.hide()

    def add(self, widget: QWidget) -> QWidget:
        """Put `widget` in the overlay (last, i.e. lowest); it keeps its own show()/hide()."""
        self._layout.addWidget(widget)
        widget.installEventFilter(self)
        self.place()
        return widget

    def widgets(self) -> list[QWidget]:
        return [self._layout.itemAt(i).widget() for i in range(self._layout.count())
                if self._layout.itemAt(i).widget() is not None]

    def covered_height(self) -> int:
        return self._covered

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() in _PLACE_ON:
            self.place()
        return False

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:  # a banner reworded: its height may change
            self.place()
        return super().event(event)

    def place(self) -> None:
        """Cover the anchor's edge with the visible widgets, or hide when there are none."""
        try:
            self._place()
        except RuntimeError as exc:
            # A host deleted while a banner shows (a window or dialog closed) hides itself and
            # its children after their Python wrappers are gone: there is nothing left to place.
            if "already deleted" not in str(exc):
                raise

    def _place(self) -> None:
        visible = any(not w.isHidden() for w in self.widgets())
        height = 0
        if visible:
            origin = self.anchor.mapTo(self.host, QPoint(0, 0)) if self.anchor is not self.host \
                else QPoint(0, 0)
            width = self.anchor.width()
            lay = self._layout
            height = (lay.totalHeightForWidth(width) if lay.hasHeightForWidth()
                      else lay.totalSizeHint().height())
            height = min(height, self.anchor.height())
            y = origin.y() if self.edge == "top" else origin.y() + self.anchor.height() - height
            self.setGeometry(origin.x(), y, width, height)
            self.raise_()
        if visible != self.isVisible():
            super().setVisible(visible)
        if height != self._covered:
            self._covered = height
            self.heightChanged.emit(height)


def float_banners(host: QWidget, anchor: QWidget, *banners: QWidget, edge: str = "bottom",
                  margins: tuple[int, int, int, int] = (12, 8, 12, 8),
                  spacing: int = 6) -> EdgeOverlay:
    """An overlay in `host` holding `banners` over an edge of `anchor` (the screen's content:
    a table, a list, a form). The screen picks the edge that hides the
    least that matters: never its search field, tabs or buttons, the window's notices (over the
    top of the screens) or the buttons under its content."""
    overlay = EdgeOverlay(host, anchor, edge, margins=margins, spacing=spacing)
    for banner in banners:
        overlay.add(banner)
    return overlay
