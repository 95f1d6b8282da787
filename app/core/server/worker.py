"""The one thread that owns the engine, and the bounded queue of requests waiting for it.

The engine is not thread-safe, so every request becomes a `Job` that this thread runs, one at a
time, as a turn of the turn pipeline (app.core.turns: the request's fields are the turn's
overrides; the context is checked, never cut: OpenAI's answer to a prompt that does not fit is
an error); at most `max_queue` jobs wait behind the running one (`submit` raises `QueueFull`
past that: the API answers 429). A job reports back through `Job.post`, which hands each event
to the asyncio loop of the request that made it. `cancel(job)` may be called from any thread: a
waiting job is dropped, a running one is stopped at once, whatever stage it is at.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from app.core.engine import EngineError, SamplingError, Stats
from app.core.library import LibraryError
from app.core.server.errors import APIError
from app.core.server.schema import CHAT, GenerationRequest
from app.core.templates import ContextOverflow, TemplateError
from app.core.turns import (REFUSE, LocalBackend, ModelRef, PreparedTurn, Turn, TurnListener,
                            TurnOptions, TurnRequest)


class QueueFull(Exception):
    pass


@dataclass(eq=False)
class Job:
    """One request for the engine. Events: ("started", PreparedTurn), ("piece", str),
    ("done", Stats), ("error", APIError)."""

    request: GenerationRequest
    model: ModelRef
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    turn: Turn | None = None
    prepared: PreparedTurn | None = None  # the exact prompt sent, once it is known
    finished: bool = False
    stats: Stats | None = None
    pieces: int = 0                   # pieces read from the engine so far
    pieces_at_cancel: int | None = None
    t_cancel: float | None = None
    t_end: float | None = None

    def post(self, kind: str, value: Any = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: the server is gone, nobody is listening
            pass


@dataclass(eq=False)
class _Call:
    fn: Callable[[LocalBackend], Any]
    future: Future = field(default_factory=Future)


class EngineWorker:
    def __init__(self, make_backend: Callable[[], LocalBackend], max_queue: int = 8,
                 history: int = 32) -> None:
        self.max_queue = max_queue
        self._make_backend = make_backend
        self.backend: LocalBackend | None = None
        self._cond = threading.Condition()
        self._waiting: deque[Job | _Call] = deque()
        self._current: Job | _Call | None = None
        self._closing = False
        self._broken: str | None = None
        self.finished: deque[Job] = deque(maxlen=history)  # recent jobs, newest last
        self._thread = threading.Thread(target=self._loop, name="corral-engine", daemon=True)

    def start(self) -> "EngineWorker":
        """Start the engine thread (once; later calls do nothing)."""
        with self._cond:
            if self._thread.ident is None:
                self._thread.start()
        return self

    # ------------------------------------------------------------------ any thread
    def submit(self, job: Job) -> None:
        with self._cond:
            if self._closing:
                raise APIError(503, "the server is shutting down", code="shutting_down")
            if len(self._waiting) >= self.max_queue:
                raise QueueFull(f"{len(self._waiting)} requests are already waiting for the "
                                f"engine (the limit is {self.max_queue}); try again shortly")
            self._waiting.append(job)
            self._cond.notify_all()

    def call(self, fn: Callable[[LocalBackend], Any]) -> Future:
        """Run fn(backend) on the engine thread, outside the queue's limit; returns a Future."""
        item = _Call(fn)
        with self._cond:
            self._waiting.append(item)
            self._cond.notify_all()
        return item.future

    def cancel(self, job: Job) -> None:
        with self._cond:
            if job.cancelled or job.finished:
                return
            job.cancelled = True
            job.t_cancel = time.perf_counter()
            job.pieces_at_cancel = job.pieces
            if job in self._waiting:
                self._waiting.remove(job)
                job.finished = True
            elif self._current is job and job.turn is not None:
                job.turn.stop()
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    @property
    def current(self) -> Job | None:
        with self._cond:
            return self._current if isinstance(self._current, Job) else None

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (no polling) until predicate() holds; it is checked at every change of the
        queue, of the running job, and at every job's end. For tests and shutdown."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def wait_idle(self, timeout: float) -> bool:
        return self.wait_until(lambda: self._current is None and not self._waiting, timeout)

    def close(self, timeout: float = 30) -> None:
        with self._cond:
            self._closing = True
            for item in self._waiting:
                if isinstance(item, Job):
                    item.cancelled = item.finished = True
                    item.post("error", APIError(503, "the server is shutting down",
                                                code="shutting_down"))
                else:
                    item.future.cancel()
            self._waiting.clear()
            current = self._current
            self._cond.notify_all()
        if isinstance(current, Job):
            self.cancel(current)
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the engine thread
    def _loop(self) -> None:
        try:
            try:
                self.backend = self._make_backend()
            except Exception as exc:  # noqa: BLE001 - every request will say why
                self._broken = f"the engine could not start: {type(exc).__name__}: {exc}"
            while True:
                with self._cond:
                    while not self._waiting and not self._closing:
                        self._cond.wait()
                    if self._closing:
                        return
                    item = self._current = self._waiting.popleft()
                    self._cond.notify_all()
                try:
                    if isinstance(item, _Call):
                        self._call(item)
                    else:
                        self._run(item)
                finally:
                    with self._cond:
                        self._current = None
                        self._cond.notify_all()
        finally:
            if self.backend is not None:
                self.backend.close()

    def _call(self, item: _Call) -> None:
        if not item.future.set_running_or_notify_cancel():
            return
        if self.backend is None:
            item.future.set_exception(RuntimeError(self._broken or "the engine is not running"))
            return
        try:
            item.future.set_result(item.fn(self.backend))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the Future
            item.future.set_exception(exc)

    def _run(self, job: Job) -> None:
        backend = self.backend
        outcome: tuple[str, object] | None = None
        try:
            if backend is None:
                raise APIError(503, self._broken or "the engine is not running",
                               code="engine_unavailable")
            turn = Turn(backend, turn_request(job), listener=_JobListener(job),
                        should_stop=lambda: job.cancelled)
            with self._cond:
                job.turn = turn
                self._cond.notify_all()
            job.stats = turn.run().stats
            outcome = ("done", job.stats)
        except APIError as exc:
            outcome = ("error", exc)
        except Exception as exc:  # noqa: BLE001 - any failure must reach the client as JSON
            stream = job.turn.stream if job.turn is not None else None
            job.stats = stream.stats if stream is not None else None
            outcome = ("error", api_error(exc, job))
        finally:
            # The job is on record (finished, in `finished`) before the client hears its end, so
            # whoever got the answer finds the job there.
            with self._cond:
                job.finished = True
                job.t_end = time.perf_counter()
                self.finished.append(job)
                self._cond.notify_all()
        job.post(*outcome)


class _JobListener(TurnListener):
    def __init__(self, job: Job) -> None:
        self.job = job

    def prepared(self, turn: PreparedTurn) -> None:
        self.job.prepared = turn
        self.job.post("started", turn)

    def pieces(self, text: str) -> None:
        self.job.pieces += 1
        self.job.post("piece", text)


def turn_request(job: Job) -> TurnRequest:
    """An OpenAI request as a turn: its fields are the turn's overrides, and a prompt that
    does not fit beside the reply asked for is refused, never cut."""
    req = job.request
    options = TurnOptions(template=req.template, fit=REFUSE,
                          overrides={**req.sampling, "max_tokens": req.max_tokens})
    if req.kind == CHAT:
        return TurnRequest(job.model, messages=tuple(req.messages or ()), options=options)
    return TurnRequest(job.model, prompt=req.prompt, options=options)


def api_error(exc: Exception, job: Job) -> APIError:
    """A failed turn as OpenAI's error: what the request got wrong is a 4xx naming the field."""
    req = job.request
    param = "messages" if req.kind == CHAT else "prompt"
    if isinstance(exc, ContextOverflow):
        return APIError(400, str(exc), code="context_length_exceeded", param=param)
    if isinstance(exc, TemplateError):
        return APIError(400, str(exc), code="invalid_prompt",
                        param="template" if req.template else param)
    if isinstance(exc, SamplingError):  # the request's values with the model's saved ones
        return APIError(400, str(exc), code="invalid_value", param=exc.field)
    if isinstance(exc, LibraryError):
        return APIError(404, str(exc), code="model_not_found", param="model")
    if isinstance(exc, EngineError):
        if job.prepared is None:
            return APIError(500, str(exc), code="model_load_failed", param="model")
        return APIError(500, str(exc), code="engine_error")
    return APIError(500, f"{type(exc).__name__}: {exc}", code="internal_error")
