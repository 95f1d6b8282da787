"""The engine worker: one QThread owns the Engine, and so the loaded model (GPT4All's pattern).

    worker = EngineWorker()              # starts its thread; the runner process starts there
    worker.load(path, load_settings)     # → loadStarted, loadProgress…, loaded | loadFailed
    rid = worker.generate(TurnRequest(...), writer)
                                          # → promptReady(rid, PreparedTurn), promptProgress…,
                                          #   tokens…, finished(rid, TurnResult) | failed(rid, text)
    worker.check_context(TurnRequest(...))  # → contextChecked(seq, PreparedTurn |
                                          #   ContextOverflow | text)
    worker.stop()                         # from the GUI thread: ends a load or a reply now
    worker.dispose()                      # stop, close the engine, quit() and wait()

A shell around the core's turn pipeline (app.core.turns): each reply is a `Turn` on the
worker's `LocalBackend`, which resolves the knobs, chooses the template, renders and fits the
conversation, streams and saves the reply (its `ReplyWriter`, app.core.chats, written here, in
the worker thread, so saving costs the GUI thread nothing). The GUI talks to the thread only
through queued signals; the thread answers only with signals. `stop()` is the one direct call:
it ends the turn at whatever stage it is (`Turn.stop`, `Engine.stop()` are safe from any
thread). Tokens are coalesced in the thread: a `tokens` signal carries every piece that arrived
in the last `coalesce_ms`, so a fast model does not flood the event loop. 40 ms: the chat shows
a streaming reply at most every 100 ms (message_view.RENDER_MS) anyway, and each signal costs the
GUI thread CPU that the model, decoding on the same cores, would otherwise have.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.core.engine import Engine, EngineError, LoadedModel, LoadSettings
from app.core.templates import ContextOverflow
from app.core.turns import (LocalBackend, ModelRef, PreparedTurn, Turn, TurnListener,
                            TurnRequest, TurnStopped, failure_text)


class _Signals(TurnListener):
    """A turn's events as the worker's signals (emitted in the worker thread, queued to the
    GUI thread)."""

    def __init__(self, backend: "_Backend", rid: int) -> None:
        self.b, self.rid = backend, rid

    def load_started(self, path: Path) -> None:
        self.b.loadStarted.emit(str(path))

    def load_progress(self, fraction: float) -> None:
        self.b.loadProgress.emit(fraction)

    def loaded(self, model: LoadedModel) -> None:
        self.b.loaded.emit(model)

    def load_failed(self, message: str) -> None:
        self.b.loadFailed.emit(message)

    def prepared(self, turn: PreparedTurn) -> None:
        self.b.promptReady.emit(self.rid, turn)

    def prompt_progress(self, done: int, total: int) -> None:
        self.b.promptProgress.emit(self.rid, done, total)

    def pieces(self, text: str) -> None:
        self.b.tokens.emit(self.rid, text)


class _Backend(QObject):
    """Lives in the worker thread; every slot runs there."""

    loadStarted = Signal(str)
    loadProgress = Signal(float)
    loaded = Signal(object)          # LoadedModel
    loadFailed = Signal(str)
    unloaded = Signal()
    promptReady = Signal(int, object)  # rid, PreparedTurn
    promptProgress = Signal(int, int, int)
    tokens = Signal(int, str)
    finished = Signal(int, object)   # rid, TurnResult
    failed = Signal(int, str)
    contextChecked = Signal(int, object)  # seq, PreparedTurn | ContextOverflow | str (an error)
    busyChanged = Signal(bool)

    def __init__(self, front: "EngineWorker", log_file: Path | None, coalesce_s: float) -> None:
        super().__init__()
        self.front = front
        self.engine: Engine | None = None
        self.turns: LocalBackend | None = None
        self.remotes: dict[str, Any] = {}  # server name → its RemoteBackend, made when needed
        self.current: Turn | None = None  # the turn running now (stopped from the GUI thread)
        self._log_file = log_file
        self._coalesce_s = coalesce_s

    # ------------------------------------------------------------------ lifecycle
    @Slot()
    def start(self) -> None:
        self.engine = Engine(prestart=True, log_file=self._log_file)
        self.turns = LocalBackend(self.engine)

    @Slot()
    def shutdown(self) -> None:
        for remote in self.remotes.values():
            remote.close()
        if self.engine is not None:
            self.engine.close()

    def backend_for(self, model: ModelRef):
        """The engine's LocalBackend, or the RemoteBackend of a remote model's server."""
        if not model.remote:
            return self.turns
        name = model.server.name
        if name not in self.remotes:
            from app.core.turns import open_backend
            self.remotes[name] = open_backend(model)
        return self.remotes[name]

    def _stopped(self, rid: int) -> bool:
        return rid <= self.front._stop_upto

    def _check(self, rid: int):
        def check() -> None:
            if self._stopped(rid):
                raise TurnStopped()
        return check

    # ------------------------------------------------------------------ loading
    @Slot(int, str, object)
    def load(self, rid: int, path: str, settings: LoadSettings | None) -> None:
        self.busyChanged.emit(True)
        try:
            assert self.turns is not None
            self.turns.load(ModelRef(Path(path).name, Path(path)), settings,
                            listener=_Signals(self, rid), check=self._check(rid))
        except (EngineError, TurnStopped):
            pass  # reported by loadFailed
        finally:
            self.busyChanged.emit(False)

    @Slot()
    def unload(self) -> None:
        if self.turns is not None and self.engine is not None and self.engine.model is not None:
            try:
                self.turns.unload()
            except EngineError as exc:
                self.loadFailed.emit(str(exc))
            self.unloaded.emit()

    # ------------------------------------------------------------------ prompts
    @Slot(int, object)
    def check_context(self, seq: int, request: TurnRequest) -> None:
        """How the next reply's prompt fits, if the model it needs is loaded (else no answer):
        the PreparedTurn, the ContextOverflow (its token count, exact or a lower bound), or
        another failure in words."""
        turns = self.turns
        if seq != self.front._check_seq or turns is None or request.model.path is None \
                or turns.loaded_path() != Path(request.model.path):
            return
        try:
            self.contextChecked.emit(seq, turns.prepare(request, load=False))
        except ContextOverflow as exc:
            self.contextChecked.emit(seq, exc)
        except Exception as exc:  # noqa: BLE001 - said in the banner, never lost
            self.contextChecked.emit(seq, failure_text(exc))

    # ------------------------------------------------------------------ generating
    @Slot(int, object, object)
    def generate(self, rid: int, request: TurnRequest, writer: Any) -> None:
        self.busyChanged.emit(True)
        turn = None
        try:
            turn = Turn(self.backend_for(request.model), request, writer=writer,
                        listener=_Signals(self, rid), coalesce_s=self._coalesce_s,
                        should_stop=lambda: self._stopped(rid))
            self.current = turn
            if self._stopped(rid):  # stopped while it waited in the queue
                turn.stop()
            self.finished.emit(rid, turn.run())
        except Exception as exc:  # noqa: BLE001 - e.g. the chats database: said, never silent
            message = failure_text(exc)
            if turn is not None and turn.save_error:
                message += f" (and the reply could not be saved: {turn.save_error})"
            elif turn is None and writer is not None and not writer.finished:
                writer.finish("error", {"stop_reason": "error", "stopped_by": "error",
                                        "error": message})  # e.g. its server's key is gone
            self.failed.emit(rid, message)
        finally:
            self.current = None
            self.busyChanged.emit(False)


class EngineWorker(QObject):
    """The GUI's handle on the engine thread. Create and use it on the GUI thread."""

    loadStarted = Signal(str)
    loadProgress = Signal(float)
    loaded = Signal(object)
    loadFailed = Signal(str)
    unloaded = Signal()
    promptReady = Signal(int, object)
    promptProgress = Signal(int, int, int)
    tokens = Signal(int, str)
    finished = Signal(int, object)
    failed = Signal(int, str)
    contextChecked = Signal(int, object)
    busyChanged = Signal(bool)

    _load = Signal(int, str, object)
    _generate = Signal(int, object, object)
    _check = Signal(int, object)
    _unload = Signal()
    _shutdown = Signal()

    def __init__(self, parent: QObject | None = None, *, log_file: Path | None = None,
                 coalesce_ms: float = 40.0) -> None:
        super().__init__(parent)
        self._rid_lock = threading.Lock()
        self._last_rid = 0
        self._stop_upto = 0  # read by the worker thread: every request ≤ this is stopped
        self._check_seq = 0
        self.model: LoadedModel | None = None
        self.busy = False
        self._disposed = False
        self._thread = QThread()
        self._thread.setObjectName("corral-engine")
        self._backend = _Backend(self, log_file, coalesce_ms / 1000.0)
        self._backend.moveToThread(self._thread)
        self._thread.started.connect(self._backend.start)
        for name in ("loadStarted", "loadProgress", "loaded", "loadFailed", "unloaded",
                     "promptReady", "promptProgress", "tokens", "finished", "failed",
                     "contextChecked", "busyChanged"):
            getattr(self._backend, name).connect(getattr(self, name))
        self._load.connect(self._backend.load)
        self._generate.connect(self._backend.generate)
        self._check.connect(self._backend.check_context)
        self._unload.connect(self._backend.unload)
        self._shutdown.connect(self._backend.shutdown)
        self.loaded.connect(self._on_loaded)
        self.unloaded.connect(self._on_unloaded)
        self.loadStarted.connect(self._on_unloaded)
        self.busyChanged.connect(self._on_busy)
        self._thread.start()

    def _next_rid(self) -> int:
        with self._rid_lock:
            self._last_rid += 1
            return self._last_rid

    def _on_loaded(self, model: LoadedModel) -> None:
        self.model = model

    def _on_unloaded(self, *_: object) -> None:
        self.model = None

    def _on_busy(self, busy: bool) -> None:
        self.busy = busy

    # ------------------------------------------------------------------ requests
    def load(self, path: str | Path, settings: LoadSettings | None = None) -> int:
        """Load a model file (settings None: the app's and the file's defaults)."""
        rid = self._next_rid()
        self._load.emit(rid, str(path), settings)
        return rid

    def generate(self, request: TurnRequest, writer: Any = None) -> int:
        """Queue a turn (its reply saved by `writer`, an app.core.chats.ReplyWriter, when
        given); returns its request id (carried by every signal about it)."""
        rid = self._next_rid()
        self._generate.emit(rid, request, writer)
        return rid

    def check_context(self, request: TurnRequest) -> int:
        """Ask how `request` would fit the loaded model's context; only the latest check runs.
        Answered by contextChecked(seq, PreparedTurn, ContextOverflow or an error text)."""
        self._check_seq += 1
        self._check.emit(self._check_seq, request)
        return self._check_seq

    def unload(self) -> None:
        self._unload.emit()

    def stop(self) -> None:
        """Stop every request made so far (a load, a fit, a prompt evaluation or a reply),
        now."""
        self._stop_upto = self._last_rid
        turn = self._backend.current
        if turn is not None:
            turn.stop()
        engine = self._backend.engine
        if engine is not None:
            engine.stop()

    def dispose(self, timeout_ms: int = 30000) -> bool:
        """Stop, close the engine (and its runner process), end the thread. Never terminate()."""
        if self._disposed:
            return True
        self._disposed = True
        self.stop()
        self._shutdown.emit()
        self._thread.quit()
        return self._thread.wait(timeout_ms)

    @property
    def thread_running(self) -> bool:
        return self._thread.isRunning()
