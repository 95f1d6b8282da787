"""The window's size and place, and what it reopens: kept in `<data>/window.ini`.

`fit()` is the rule, pure and tested with given screens: the window *with its frame* lies
inside the screen's available geometry (the screen less its taskbars and panels), no larger
than the preferred size, centred when first shown. A 1366×768 laptop with a 40 px taskbar
offers 1366×728: the first window is then 1180 wide and as tall as fits under its title bar.
Before the window manager has framed the window its frame is not known, so an estimate is
used, and the window is fitted again with the real frame once it is on screen (`refit`).

`WindowState` keeps what is restored next time: geometry (clamped to the screen the window
comes back on, which may be smaller than the one it was saved on), the last screen, every
named QSplitter's sizes, and the conversation that was open.
"""

from __future__ import annotations

from typing import NamedTuple

from PySide6.QtCore import QRect, QSettings
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMainWindow, QSplitter, QWidget

PREFERRED = (1180, 760)          # the first window's client size where the screen allows
FRAME_GUESS = (1, 32, 1, 1)      # left, top (title bar), right, bottom until the real one is known


class Rect(NamedTuple):
    x: int
    y: int
    w: int
    h: int


def fit(available: Rect, frame: tuple[int, int, int, int], *, preferred: tuple[int, int] = PREFERRED,
        minimum: tuple[int, int] = (0, 0), current: Rect | None = None) -> Rect:
    """The client geometry (inside the frame) for a window on a screen offering `available`.

    `frame` is (left, top, right, bottom). With `current` (a restored or present geometry)
    its size is kept when it fits and it is moved only as far as needed to lie inside;
    without, the preferred size is used, shrunk to fit, and centred. Never smaller than
    `minimum` (the window's own minimum: a screen smaller than that is left overflowing)."""
    left, top, right, bottom = frame
    room_w = max(1, available.w - left - right)
    room_h = max(1, available.h - top - bottom)
    want_w, want_h = (current.w, current.h) if current is not None else preferred
    w = max(minimum[0], min(want_w, room_w))
    h = max(minimum[1], min(want_h, room_h))
    if current is None:
        x = available.x + left + (room_w - w) // 2
        y = available.y + top + (room_h - h) // 2
    else:
        x, y = current.x, current.y
    # Inside the available area, frame included: the title bar is never above the screen.
    x = min(max(x, available.x + left), available.x + available.w - right - w)
    y = min(max(y, available.y + top), available.y + available.h - bottom - h)
    x = max(x, available.x + left)
    y = max(y, available.y + top)
    return Rect(x, y, w, h)


def rect(r: QRect) -> Rect:
    return Rect(r.x(), r.y(), r.width(), r.height())


def frame_of(window: QWidget) -> tuple[int, int, int, int]:
    """The window's frame margins, or FRAME_GUESS while it has none yet (not framed)."""
    g, f = window.geometry(), window.frameGeometry()
    margins = (g.left() - f.left(), g.top() - f.top(), f.right() - g.right(),
               f.bottom() - g.bottom())
    return margins if any(margins) and window.isVisible() else FRAME_GUESS


def available_for(window: QWidget, where: QRect | None = None) -> Rect:
    """The available geometry of the screen showing `where` (default: the window's centre)."""
    point = (where or window.geometry()).center()
    screen = QGuiApplication.screenAt(point) or window.screen() or QGuiApplication.primaryScreen()
    return rect(screen.availableGeometry())


def place(window: QWidget, current: Rect | None = None) -> None:
    """Fit `window` to its screen now (see `fit`)."""
    where = QRect(*current) if current is not None else None
    r = fit(available_for(window, where), frame_of(window), current=current,
            minimum=minimum(window))
    window.setGeometry(*r)


def minimum(window: QWidget) -> tuple[int, int]:
    """The smallest the window can be: its set minimum or what its layout needs."""
    hint = window.minimumSizeHint()
    return max(window.minimumWidth(), hint.width()), max(window.minimumHeight(), hint.height())


def refit(window: QWidget) -> bool:
    """Once on screen with a real frame: move or shrink the window if its frame does not lie
    inside the available geometry. True when it changed."""
    if window.isMaximized() or window.isFullScreen():
        return False
    now = rect(window.geometry())
    r = fit(available_for(window), frame_of(window), current=now, minimum=minimum(window))
    if r == now:
        return False
    window.setGeometry(*r)
    return True


class WindowState:
    """window.ini: geometry, the last screen, splitter sizes and the open conversation."""

    def __init__(self, path: str) -> None:
        self.ini = QSettings(path, QSettings.Format.IniFormat)
        self._splitters_restored: set[str] = set()

    def restore(self, window: QMainWindow) -> str | None:
        """Restore size and place (clamped to today's screen) or fit a first window; the last
        screen's name, if one was kept."""
        geometry = self.ini.value("window/geometry")
        restored = geometry is not None and window.restoreGeometry(geometry)
        state = self.ini.value("window/state")
        if state is not None:
            window.restoreState(state)
        if restored and not (window.isMaximized() or window.isFullScreen()):
            place(window, rect(window.geometry()))
        elif not restored:
            place(window)
        last = self.ini.value("window/screen")
        return last if isinstance(last, str) else None

    def conversation(self) -> int | None:
        value = self.ini.value("chat/conversation")
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):  # edited by hand: no conversation to reopen
            return None

    def restore_splitters(self, screen: QWidget) -> None:
        """Each named QSplitter of `screen` gets its kept sizes (once: later it is the user's)."""
        for splitter in screen.findChildren(QSplitter):
            name = splitter.objectName()
            if not name or name in self._splitters_restored:
                continue
            self._splitters_restored.add(name)
            sizes = self.ini.value(f"splitters/{name}")
            if sizes:
                splitter.restoreState(sizes)

    def save(self, window: QMainWindow, screen: str, screens: list[QWidget],
             conversation: int | None | bool) -> None:
        """`conversation`: the id open now, None for none, False to keep the one kept (the
        chats could not be opened this time: which one was open is not known)."""
        s = self.ini
        s.setValue("window/geometry", window.saveGeometry())
        s.setValue("window/state", window.saveState())
        s.setValue("window/screen", screen)
        for built in screens:
            for splitter in built.findChildren(QSplitter):
                if splitter.objectName():
                    s.setValue(f"splitters/{splitter.objectName()}", splitter.saveState())
        if conversation is False:
            pass
        elif conversation:
            s.setValue("chat/conversation", conversation)
        else:
            s.remove("chat/conversation")
        s.sync()
