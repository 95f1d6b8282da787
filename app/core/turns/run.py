"""Running one turn: prepare it on its backend, stream the reply, save it as it grows, and end
with a state and the reason it stopped.

    turn = Turn(backend, request, writer=store.begin_reply(cid), listener=my_listener)
    result = turn.run()        # on the thread that owns the backend; TurnResult
    turn.stop()                # from any thread, at any stage

Stopping works at every stage: before the model loads, while it loads (llama.cpp's progress
callback), while the conversation is fitted (between renders and token counts, each bounded by
the context), while the prompt is evaluated (the runner's abort callback interrupts
llama_decode), and between generated tokens. Pieces are coalesced (`coalesce_s`) so a fast
model does not flood a face with one event per token.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from app.core.engine import Stats
from app.core.turns.ending import COMPLETE, ERROR, FAILED, INTERRUPTED, USER, TurnResult, \
    stopped_by
from app.core.turns.model import Backend, PreparedTurn, TurnListener, TurnRequest, TurnStopped


class Turn:
    """One turn, from request to saved reply (see the module's doc)."""

    def __init__(self, backend: Backend, request: TurnRequest, *, writer: Any = None,
                 listener: TurnListener | None = None, coalesce_s: float = 0.0,
                 should_stop: Callable[[], bool] | None = None) -> None:
        self.backend = backend
        self.request = request
        self.writer = writer          # app.core.chats.ReplyWriter, or None
        self.listener = listener or TurnListener()
        self.coalesce_s = coalesce_s
        self._should_stop = should_stop
        self._stopped = False
        self.prepared: PreparedTurn | None = None
        self.stream: Any = None       # the backend's Stream, once started
        self.save_error: str | None = None  # the reply could not be saved: why

    # ------------------------------------------------------------------ any thread
    def stop(self) -> None:
        """End the turn as soon as it can: at its next check, or now in the engine."""
        self._stopped = True
        self.backend.stop()

    @property
    def stopped(self) -> bool:
        return self._stopped or (self._should_stop is not None and self._should_stop())

    # ------------------------------------------------------------------ the turn's thread
    def check(self) -> None:
        """Raise TurnStopped once the turn was asked to stop."""
        if self.stopped:
            raise TurnStopped()

    def prepare(self) -> PreparedTurn:
        self.prepared = self.backend.prepare(self.request, listener=self.listener,
                                             check=self.check)
        return self.prepared

    def run(self) -> TurnResult:
        """Prepare (unless done), stream and save. Returns how it ended; a failure is saved
        with the reply (state "error") and raised."""
        try:
            turn = self.prepared or self.prepare()
            self.listener.prepared(turn)
            self.check()
            stream = self.stream = self.backend.start(turn)
        except TurnStopped:
            return self._finish(Stats(stop_reason="cancelled"), "", None)
        except BaseException as exc:
            self._fail(exc, None)
            raise
        if self.stopped:  # a stop that came while the engine was being started
            self.backend.stop()
        stream.on_prompt_progress = self.listener.prompt_progress
        writer, emit, interval = self.writer, self.listener.pieces, self.coalesce_s
        clock, pending, last = time.perf_counter, [], 0.0
        try:
            for piece in stream:
                if writer is not None:
                    writer.append(piece)
                pending.append(piece)
                now = clock()
                if now - last >= interval:
                    emit("".join(pending))
                    pending.clear()
                    last = now
        except BaseException as exc:
            if pending:
                emit("".join(pending))
            self._fail(exc, getattr(stream, "stats", None))
            raise
        if pending:
            emit("".join(pending))
        stats = stream.stats or Stats(stop_reason="cancelled")
        return self._finish(stats, getattr(stream, "text", ""), turn)

    def _finish(self, stats: Stats, text: str, turn: PreparedTurn | None) -> TurnResult:
        reason = USER if stats.stop_reason == "cancelled" else stopped_by(stats, turn)
        result = TurnResult(INTERRUPTED if reason == USER else COMPLETE, reason, stats, text)
        if self.writer is not None:
            self.writer.finish(result.state, result.saved_stats())
        return result

    def _fail(self, exc: BaseException, stats: Stats | None) -> None:
        """Save the partial reply as failed, with what went wrong."""
        if self.writer is None or self.writer.finished:
            return
        message = failure_text(exc)
        result = TurnResult(FAILED, ERROR, stats or Stats(), error=message)
        saved = result.saved_stats()
        saved["stop_reason"] = "error"
        try:
            self.writer.finish(FAILED, saved)
        except Exception as save_exc:  # noqa: BLE001 - the reply cannot be saved: say so too
            self.save_error = str(save_exc)


def failure_text(exc: BaseException) -> str:
    """How a failure is told to a person: the message of errors Corral raises on purpose,
    the type too for anything else (never silent)."""
    from app.core.engine import EngineError
    from app.core.remote import RemoteError
    from app.core.sampling import SamplingError
    from app.core.templates import TemplateError

    if isinstance(exc, (EngineError, TemplateError, RemoteError, SamplingError)):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"
