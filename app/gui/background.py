"""Run a function off the UI thread and get its result back on it (Anki's QueryOp, in small).

    run(lambda: library.scan(), done=self._show_models, failed=self._show_error)

`fn` runs on a pool thread and must not touch widgets; `done(result)` or `failed(exception)`
is then called on the UI thread (a queued signal). When `done`/`failed` are bound methods of a
QObject that has been deleted meanwhile, PySide drops the call. The pool is Corral's own (two
threads: the machine may have only two cores), so a long import never waits behind the chat.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)

_pool: QThreadPool | None = None
_alive: set["_Relay"] = set()


def pool() -> QThreadPool:
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(2)
        _pool.setExpiryTimeout(10_000)
    return _pool


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object)


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.fn = fn
        self.relay = relay
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as exc:  # handed to `failed` on the UI thread, never lost
            log.debug("background task failed", exc_info=True)
            self._emit(self.relay.failed, exc)
            return
        self._emit(self.relay.done, result)

    @staticmethod
    def _emit(signal, value: Any) -> None:
        try:
            signal.emit(value)
        except RuntimeError:  # the relay was deleted at exit
            pass


def run(fn: Callable[[], Any], *, done: Callable[[Any], None] | None = None,
        failed: Callable[[BaseException], None] | None = None) -> None:
    relay = _Relay()
    _alive.add(relay)

    def finish(*_: object) -> None:
        _alive.discard(relay)
        relay.deleteLater()

    if done is not None:
        relay.done.connect(done)
    if failed is not None:
        relay.failed.connect(failed)
    else:
        relay.failed.connect(lambda exc: log.error("background task failed: %s", exc))
    relay.done.connect(finish)
    relay.failed.connect(finish)
    pool().start(_Task(fn, relay))


def wait(timeout_ms: int = 10_000) -> bool:
    """Wait for running tasks (at exit), so no Python thread outlives the interpreter's end."""
    return True if _pool is None else _pool.waitForDone(timeout_ms)
