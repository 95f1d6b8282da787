"""The engine worker: one QThread owns the Engine, and so the loaded model (GPT4All's pattern).

    worker = EngineWorker()              # starts its thread; the runner process starts there
    worker.load(path, LoadSettings(...))  # → loadStarted, loadProgress…, loaded | loadFailed
    rid = worker.generate(ReplyRequest(...))
                                          # → promptReady, promptProgress…, tokens…,
                                          #   finished(rid, Stats) | failed(rid, message)
    worker.stop()                         # from the GUI thread: ends a load or a reply now
    worker.dispose()                      # stop, close the engine, quit() and wait()

The GUI talks to the thread only through queued signals; the thread answers only with signals.
`stop()` is the one direct call: `Engine.stop()` is safe from any thread and takes effect before
the next token (or cancels a load / a prompt evaluation). Tokens are coalesced in the thread: a
`tokens` signal carries every piece that arrived in the last `coalesce_ms`, so a fast model does
not flood the event loop. A reply's `ReplyWriter` (app.core.chats) is written here, in the worker
thread, so saving a growing reply costs the GUI thread nothing.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.core.chats import ReplyWriter
from app.core.engine import Engine, EngineError, LoadedModel, LoadSettings, SamplingParams, Stats
from app.core.templates import PromptTemplate, TemplateError, fit_to_context


def guard_pyside_refcounts() -> list[str]:
    """PySide6 6.12.0 on Python < 3.12 hands back True and None without a reference of their
    own: every `signal.emit()` drops one reference to True, every call of a method returning
    nothing (setText, update, processEvents…) one to None, and the interpreter aborts
    ("bool_dealloc" / "none_dealloc: deallocating …") once a count reaches zero — within
    minutes of normal use. Where that happens, give True, False and None a reference count no
    run can use up. Harmless elsewhere; remove once PySide6 is pinned past the bug (6.11.3 is
    fine). Returns the objects it protected."""
    if sys.version_info >= (3, 12):
        return []  # True, False and None are immortal there

    class _Probe(QObject):
        ping = Signal()

    probe = _Probe()
    protected = []
    for name, obj, call in (("True", True, probe.ping.emit),
                            ("None", None, lambda: probe.setObjectName("probe"))):
        before = sys.getrefcount(obj)
        for _ in range(4):
            call()
        if before - sys.getrefcount(obj) >= 4:
            protected.append(name)
    if "True" in protected:
        protected.append("False")
    for name in protected:
        obj = {"True": True, "False": False, "None": None}[name]
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40
    return protected


PYSIDE_REFCOUNT_GUARD = guard_pyside_refcounts()


@dataclass(frozen=True)
class ReplyRequest:
    """What to answer: a conversation rendered by `template`, or an exact `prompt` text."""

    model_path: str
    load: LoadSettings = LoadSettings()
    params: SamplingParams = SamplingParams()
    template: PromptTemplate | None = None
    messages: tuple[dict[str, str], ...] = ()
    system: str | None = None
    prompt: str | None = None             # sent as is (completion mode, inspector override)
    stop: tuple[str, ...] | None = None   # None: the template's stop strings
    add_bos: bool = True                  # for `prompt`; a template decides for itself
    writer: ReplyWriter | None = None     # saves the reply as it grows (in the worker thread)


@dataclass(frozen=True)
class PromptPlan:
    """The exact text sent to the model, and what fitting it into the context cost."""

    text: str
    stop: tuple[str, ...]
    add_bos: bool
    template_id: str
    dropped_turns: int
    prompt_tokens: int
    n_ctx: int
    reserve: int


def reserve_for(params: SamplingParams, n_ctx: int) -> int:
    """Room kept for the reply when fitting a conversation: n_predict, at most half the context."""
    return max(1, min(params.max_tokens or n_ctx // 2, n_ctx // 2))


def stats_dict(stats: Stats) -> dict[str, Any]:
    return {k: v for k, v in asdict(stats).items() if v is not None}


class _Backend(QObject):
    """Lives in the worker thread; every slot runs there."""

    loadStarted = Signal(str)
    loadProgress = Signal(float)
    loaded = Signal(object)          # LoadedModel
    loadFailed = Signal(str)
    unloaded = Signal()
    promptReady = Signal(int, object)  # rid, PromptPlan
    promptProgress = Signal(int, int, int)
    tokens = Signal(int, str)
    finished = Signal(int, object)   # rid, Stats
    failed = Signal(int, str)
    contextChecked = Signal(int, object)  # seq, PromptPlan | str (why it cannot fit)
    busyChanged = Signal(bool)

    def __init__(self, front: "EngineWorker", log_file: Path | None, coalesce_s: float) -> None:
        super().__init__()
        self.front = front
        self.engine: Engine | None = None
        self._log_file = log_file
        self._coalesce_s = coalesce_s
        self._load_settings: LoadSettings | None = None

    # ------------------------------------------------------------------ lifecycle
    @Slot()
    def start(self) -> None:
        self.engine = Engine(prestart=True, log_file=self._log_file)

    @Slot()
    def shutdown(self) -> None:
        if self.engine is not None:
            self.engine.close()

    def _stopped(self, rid: int) -> bool:
        return rid <= self.front._stop_upto

    # ------------------------------------------------------------------ loading
    @Slot(int, str, object)
    def load(self, rid: int, path: str, settings: LoadSettings) -> None:
        self.busyChanged.emit(True)
        try:
            self._ensure_loaded(rid, path, settings)
        except EngineError:
            pass  # reported by loadFailed
        finally:
            self.busyChanged.emit(False)

    def _ensure_loaded(self, rid: int, path: str, settings: LoadSettings) -> LoadedModel:
        engine = self.engine
        assert engine is not None
        if (engine.model is not None and engine.model.path == Path(path)
                and self._load_settings == settings):
            return engine.model
        self.loadStarted.emit(path)
        try:
            engine.gpu_support()  # the runner past its llama.cpp import
            if self._stopped(rid):
                raise EngineError(f"Loading {Path(path).name} was cancelled")

            def progress(value: float) -> None:
                self.loadProgress.emit(value)
                if self._stopped(rid):  # a stop that came before the load had an id
                    engine.stop()

            self._load_settings = None
            model = engine.load(path, settings, progress)
        except EngineError as exc:
            self.loadFailed.emit(str(exc))
            raise
        self._load_settings = settings
        self.loaded.emit(model)
        return model

    @Slot()
    def unload(self) -> None:
        if self.engine is not None and self.engine.model is not None:
            try:
                self.engine.unload()
            except EngineError as exc:
                self.loadFailed.emit(str(exc))
            self._load_settings = None
            self.unloaded.emit()

    # ------------------------------------------------------------------ prompts
    def _plan(self, req: ReplyRequest) -> PromptPlan:
        engine = self.engine
        assert engine is not None and engine.model is not None
        n_ctx = engine.model.n_ctx
        reserve = reserve_for(req.params, n_ctx)
        if req.prompt is not None:
            stop = tuple(req.stop or ())
            text, add_bos, tid, dropped = req.prompt, req.add_bos, "raw", 0
        elif req.template is not None:
            rendered = fit_to_context(req.template, list(req.messages), n_ctx,
                                      engine.count_tokens, reserve, system=req.system)
            stop = tuple(req.stop) if req.stop is not None else tuple(rendered.stop)
            text, add_bos = rendered.text, rendered.add_bos
            tid, dropped = rendered.template_id, rendered.dropped_turns
        else:
            raise TemplateError("nothing to send: no template and no prompt text")
        used = engine.count_tokens(text) + (1 if add_bos else 0)
        return PromptPlan(text, stop, add_bos, tid, dropped, used, n_ctx, reserve)

    @Slot(int, object)
    def check_context(self, seq: int, req: ReplyRequest) -> None:
        """How the next reply's prompt fits, if the model it needs is loaded (else no answer)."""
        engine = self.engine
        if seq != self.front._check_seq or engine is None or engine.model is None \
                or engine.model.path != Path(req.model_path):
            return
        try:
            self.contextChecked.emit(seq, self._plan(req))
        except (TemplateError, EngineError) as exc:
            self.contextChecked.emit(seq, str(exc))

    # ------------------------------------------------------------------ generating
    @Slot(int, object)
    def generate(self, rid: int, req: ReplyRequest) -> None:
        self.busyChanged.emit(True)
        writer = req.writer
        try:
            if self._stopped(rid):
                return self._cancelled(rid, writer)
            self._ensure_loaded(rid, req.model_path, req.load)
            if self._stopped(rid):
                return self._cancelled(rid, writer)
            plan = self._plan(req)
            self.promptReady.emit(rid, plan)
            stats = self._stream(rid, plan, req, writer)
            if writer is not None:
                state = "interrupted" if stats.stop_reason == "cancelled" else "complete"
                writer.finish(state, stats_dict(stats))
            self.finished.emit(rid, stats)
        except (EngineError, TemplateError) as exc:
            self._fail(rid, writer, str(exc))
        except Exception as exc:  # noqa: BLE001 - e.g. the chats database: said, never silent
            self._fail(rid, writer, f"{type(exc).__name__}: {exc}")
        finally:
            self.busyChanged.emit(False)

    def _fail(self, rid: int, writer: ReplyWriter | None, message: str) -> None:
        if writer is not None and not writer.finished:
            try:
                writer.finish("error", {"stop_reason": "error", "error": message})
            except Exception as exc:  # noqa: BLE001 - the reply cannot be saved: say so too
                message += f" (and the reply could not be saved: {exc})"
        self.failed.emit(rid, message)

    def _cancelled(self, rid: int, writer: ReplyWriter | None) -> None:
        stats = Stats(stop_reason="cancelled")
        if writer is not None:
            writer.finish("interrupted", stats_dict(stats))
        self.finished.emit(rid, stats)

    def _stream(self, rid: int, plan: PromptPlan, req: ReplyRequest,
                writer: ReplyWriter | None) -> Stats:
        engine = self.engine
        assert engine is not None
        room = max(1, plan.n_ctx - plan.prompt_tokens)
        params = replace(req.params, stop=plan.stop,
                         max_tokens=min(req.params.max_tokens or room, room))
        generation = engine.generate(plan.text, params, add_bos=plan.add_bos)
        generation.on_prompt_progress = lambda done, total: self.promptProgress.emit(rid, done,
                                                                                     total)
        emit, interval, clock = self.tokens.emit, self._coalesce_s, time.perf_counter
        pending: list[str] = []
        last = 0.0
        for piece in generation:
            if writer is not None:
                writer.append(piece)
            pending.append(piece)
            now = clock()
            if now - last >= interval:
                emit(rid, "".join(pending))
                pending.clear()
                last = now
        if pending:
            emit(rid, "".join(pending))
        assert generation.stats is not None
        return generation.stats


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
    _generate = Signal(int, object)
    _check = Signal(int, object)
    _unload = Signal()
    _shutdown = Signal()

    def __init__(self, parent: QObject | None = None, *, log_file: Path | None = None,
                 coalesce_ms: float = 16.0) -> None:
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
    def load(self, path: str | Path, settings: LoadSettings = LoadSettings()) -> int:
        rid = self._next_rid()
        self._load.emit(rid, str(path), settings)
        return rid

    def generate(self, request: ReplyRequest) -> int:
        """Queue a reply; returns its request id (carried by every signal about it)."""
        rid = self._next_rid()
        self._generate.emit(rid, request)
        return rid

    def check_context(self, request: ReplyRequest) -> int:
        """Ask how `request` would fit the loaded model's context; only the latest check runs.
        Answered by contextChecked(seq, PromptPlan or an error text)."""
        self._check_seq += 1
        self._check.emit(self._check_seq, request)
        return self._check_seq

    def unload(self) -> None:
        self._unload.emit()

    def stop(self) -> None:
        """Stop every request made so far (a load, a prompt evaluation or a reply), now."""
        self._stop_upto = self._last_rid
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
