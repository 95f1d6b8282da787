"""The engine: load a GGUF model and stream completions from it, safely.

llama.cpp runs in a child process, the runner (`app.core.runner`), which the engine starts
ahead of need so that a load never waits for Python and llama.cpp to import. When the runner
dies — llama.cpp abort()s on some inputs — the engine raises `EngineError` with the reason
(the signal and what llama.cpp printed last), and the next call starts a fresh runner.

Threading: one thread drives an Engine (the GUI's engine worker, or the CLI's main thread);
`stop()` may be called from any other thread and takes effect before the next token.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from app.core import gguf_info, hardware
from app.core.inputs import text_problem
from app.core.child import start_child
from app.core.runner import FAULT_ENV, REQUEST_MARK  # noqa: F401 - FAULT_ENV for tests and docs
from app.core.sampling import SamplingError, SamplingParams  # noqa: F401 - part of this API


class EngineError(Exception):
    """A failure a person can act on: the message says what happened and, where known, why."""


@dataclass(frozen=True)
class LoadSettings:
    backend: str = "auto"  # auto | cpu | gpu
    gpu_layers: int | None = None  # None = all layers when on the GPU
    threads: int | None = None  # None = hardware.default_threads()
    n_ctx: int | None = None  # None = the model's training context, at most 4096
    n_batch: int = 512
    use_mmap: bool = True


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    info: gguf_info.ModelInfo
    n_ctx: int
    n_ctx_train: int
    n_gpu_layers: int
    backend: str  # "cpu" or the GPU kind actually used
    fallback_reason: str  # why the model is not where it was asked to be ("" if it is)
    load_s: float
    # The most bytes of text one token covers: a text of N bytes is at least N / this tokens
    # (the turn pipeline's context fit uses it to refuse a huge text before tokenizing it).
    max_token_bytes: int = 0


@dataclass
class Stats:
    prompt_tokens: int = 0
    reused_tokens: int = 0  # found in the KV cache from the previous turn: not evaluated again
    evaluated_tokens: int = 0
    generated_tokens: int = 0
    ttft_s: float | None = None  # request → first token, as seen by the caller
    decode_tps: float | None = None
    prompt_s: float = 0.0
    decode_s: float = 0.0
    total_s: float = 0.0
    stop_reason: str = ""  # eos | stop | length | cancelled | error
    stop_string: str | None = None
    seed: int | None = None
    aborted_in_prompt: bool = False
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class _Runner:
    """One runner process and the pipes to it."""

    def __init__(self, log_file: Path | None) -> None:
        # Isolated (app.core.child): nothing in the user's working folder is imported.
        # GGML_NO_BACKTRACE: on an assert, ggml would otherwise attach gdb to print a backtrace,
        # which is slow and buries the one line that says what went wrong.
        self.proc = start_child("app.core.runner", "--corral-runner",
                                env={"GGML_NO_BACKTRACE": "1"}, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # What the runner printed since its current request began (or since it was last idle):
        # the runner marks both on stderr, so a death is never blamed on an earlier request.
        self.stderr_tail: deque[str] = deque(maxlen=60)
        self._write_lock = threading.Lock()
        self._stderr_thread = threading.Thread(target=self._drain_stderr, args=(log_file,),
                                               name="runner-stderr", daemon=True)
        self._stderr_thread.start()
        self.ready: dict | None = None

    def _drain_stderr(self, log_file: Path | None) -> None:
        log = None
        if log_file is not None:
            try:
                log = open(log_file, "a", encoding="utf-8")
            except OSError:
                log = None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line.startswith(REQUEST_MARK):
                self.stderr_tail.clear()
            elif line:
                self.stderr_tail.append(line)
                if log:
                    log.write(line + "\n")
                    log.flush()
        if log:
            log.close()

    def send(self, **msg) -> None:
        data = json.dumps(msg).encode() + b"\n"
        with self._write_lock:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass  # the runner is gone; the reader sees EOF and explains why

    def receive(self) -> dict | None:
        line = self.proc.stdout.readline()
        if not line:
            return None
        return json.loads(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def death_reason(self) -> str:
        """After EOF: how the runner ended, and the last words llama.cpp printed."""
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._stderr_thread.join(timeout=5)
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        lines = [ln for ln in self.stderr_tail if not ln.startswith("#")]  # no backtrace frames
        asserts = [ln for ln in lines if "GGML_ASSERT" in ln]
        errors = [ln for ln in lines if "error" in ln.lower()]
        said = (asserts or errors or lines or [""])[-1]
        return f"the model runner {how}" + (f": {said}" if said else "")

    def close(self, timeout: float = 5) -> None:
        if self.proc.poll() is None:
            self.send(op="exit")
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


class Engine:
    """Drives one runner process, which holds at most one loaded model."""

    def __init__(self, *, prestart: bool = True, log_file: Path | None = None) -> None:
        self._log_file = log_file
        self._runner: _Runner | None = None
        self._next_id = 1
        self._active_id = 0
        self._stopped_id = 0  # every request id up to this one has been stopped
        self.model: LoadedModel | None = None
        self.gpu: hardware.GpuSupport | None = None
        if prestart:
            self._spawn()

    # --- lifecycle ----------------------------------------------------------------------
    def _spawn(self) -> _Runner:
        self._runner = _Runner(self._log_file)
        return self._runner

    def _ready_runner(self) -> _Runner:
        """The runner, started if needed and past its llama.cpp import."""
        runner = self._runner if self._runner and self._runner.alive() else self._spawn()
        if runner.ready is None:
            msg = runner.receive()
            if msg is None or msg.get("ev") != "ready":
                reason = msg.get("message") if msg else runner.death_reason()
                self._runner = None
                raise EngineError(f"Could not start llama.cpp: {reason}")
            runner.ready = msg
            self.gpu = hardware.gpu_from_runner(msg["gpu_offload"], msg.get("system_info", ""))
        return runner

    def gpu_support(self) -> hardware.GpuSupport:
        self._ready_runner()
        assert self.gpu is not None
        return self.gpu

    def close(self) -> None:
        if self._runner:
            self._runner.close()
            self._runner = None
        self.model = None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _died(self, doing: str) -> EngineError:
        runner, self._runner, self.model = self._runner, None, None
        reason = runner.death_reason() if runner else "the model runner is not running"
        self._spawn()  # a fresh spare, so the next load does not wait
        return EngineError(f"{doing} failed: {reason}")

    def _new_id(self) -> int:
        self._next_id += 1
        self._active_id = self._next_id
        return self._active_id

    # --- loading ------------------------------------------------------------------------
    def load(self, path: str | os.PathLike, settings: LoadSettings = LoadSettings(),
             on_progress: Callable[[float], None] | None = None) -> LoadedModel:
        """Load a model (replacing any other). On a GPU failure, load again on the CPU and say why."""
        path = Path(path)
        try:
            info = gguf_info.inspect(path)
        except gguf_info.GGUFError as exc:
            raise EngineError(f"Cannot load {exc}") from exc
        gpu = self.gpu_support()
        plan = hardware.plan_offload(settings.backend, settings.gpu_layers, gpu)
        try:
            loaded = self._load(path, info, settings, plan.n_gpu_layers, on_progress)
        except EngineError as exc:
            if plan.n_gpu_layers == 0 or "cancelled" in str(exc):
                raise
            fallback = f"loading on the GPU failed ({exc}); running on the CPU instead"
            loaded = self._load(path, info, settings, 0, on_progress)
            return self._finish(loaded, "cpu", fallback)
        return self._finish(loaded, plan.backend if plan.n_gpu_layers else "cpu", plan.note)

    def _finish(self, loaded: dict, backend: str, reason: str) -> LoadedModel:
        self.model = LoadedModel(**loaded, backend=backend, fallback_reason=reason)
        return self.model

    def _load(self, path: Path, info, settings: LoadSettings, n_gpu_layers: int,
              on_progress: Callable[[float], None] | None) -> dict:
        runner = self._ready_runner()
        self.model = None
        rid = self._new_id()
        # Absolute: the runner works in a folder of its own (app.core.child).
        runner.send(op="load", id=rid, path=os.path.abspath(path), n_gpu_layers=n_gpu_layers,
                    n_ctx=settings.n_ctx or 0, n_batch=settings.n_batch,
                    n_threads=settings.threads or hardware.default_threads(),
                    use_mmap=settings.use_mmap)
        while True:
            msg = runner.receive()
            if msg is None:
                raise self._died(f"Loading {path.name}")
            ev = msg.get("ev")
            if ev == "progress":
                if on_progress:
                    on_progress(msg["value"])
            elif ev == "error":
                if msg["message"] == "cancelled":
                    raise EngineError(f"Loading {path.name} was cancelled")
                raise EngineError(f"Cannot load {path.name}: {msg['message']}")
            elif ev == "loaded":
                return dict(path=path, info=info, n_ctx=msg["n_ctx"], n_ctx_train=msg["n_ctx_train"],
                            n_gpu_layers=n_gpu_layers, load_s=msg["load_s"],
                            max_token_bytes=int(msg.get("max_token_bytes") or 0))

    def unload(self) -> None:
        if self._runner and self._runner.alive() and self.model:
            self._runner.send(op="unload")
            self._expect("unloaded", "Unloading")
        self.model = None

    def _expect(self, event: str, doing: str) -> dict:
        runner = self._runner
        assert runner is not None
        msg = runner.receive()
        if msg is None:
            raise self._died(doing)
        if msg.get("ev") == "error":
            raise EngineError(f"{doing} failed: {msg['message']}")
        if msg.get("ev") != event:
            raise EngineError(f"{doing} failed: unexpected reply {msg.get('ev')!r} from the runner")
        return msg

    # --- text ---------------------------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        self._require_model()
        _check_text(text, "the text to count")
        self._runner.send(op="tokenize", text=text, add_bos=add_bos)
        return self._expect("tokens", "Tokenizing")["tokens"]

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def _require_model(self) -> None:
        if self.model is None or self._runner is None:
            raise EngineError("No model is loaded")

    def generate(self, prompt: str, params: SamplingParams = SamplingParams(), *,
                 add_bos: bool = True) -> "Generation":
        """Start a completion; iterate the result for text pieces, then read its `stats`."""
        self._require_model()
        _check_text(prompt, "the prompt")
        seed = params.seed if params.seed is not None else random.randrange(2**31)
        rid = self._new_id()
        wire = {k: v for k, v in asdict(params).items() if v is not None}
        wire["seed"], wire["stop"] = seed, list(params.stop)
        self._runner.send(op="generate", id=rid, prompt=prompt, add_bos=add_bos, params=wire)
        return Generation(self, rid)

    def stop(self) -> None:
        """Stop the current load or generation; safe to call from any thread, at any time."""
        rid = self._active_id
        self._stopped_id = max(self._stopped_id, rid)
        runner = self._runner
        if runner is not None and rid:
            runner.send(op="stop", id=rid)


def _check_text(text: str, what: str) -> None:
    """Faces check their input first and name the field; this keeps the runner safe whatever
    a caller passes (text that cannot be encoded as UTF-8 used to kill it)."""
    problem = text_problem(text) if isinstance(text, str) else f"is not text but {type(text).__name__}"
    if problem:
        raise EngineError(f"{what} {problem}")


@dataclass
class Generation:
    """The pieces of one completion as they arrive; `stats` is filled in when it ends."""

    engine: Engine
    request_id: int
    stats: Stats | None = None
    text: str = ""
    # (tokens evaluated, tokens to evaluate) while the prompt is read, before the first piece
    prompt_progress: tuple[int, int] | None = None
    on_prompt_progress: Callable[[int, int], None] | None = None
    _started: float = field(default_factory=time.perf_counter)

    @property
    def stopped(self) -> bool:
        return self.engine._stopped_id >= self.request_id

    def __iter__(self) -> Iterator[str]:
        engine, runner = self.engine, self.engine._runner
        first = None
        try:
            while True:
                msg = runner.receive()
                if msg is None:
                    self.stats = Stats(stop_reason="error")
                    raise engine._died("Generating")
                if "p" in msg:
                    if self.stopped:
                        continue  # stopped: show nothing more, but keep reading to the end
                    if first is None:
                        first = time.perf_counter() - self._started
                    self.text += msg["p"]
                    yield msg["p"]
                elif msg.get("ev") == "prompt":
                    self.prompt_progress = (msg["done"], msg["total"])
                    if self.on_prompt_progress:
                        self.on_prompt_progress(msg["done"], msg["total"])
                elif msg.get("ev") == "done":
                    self.stats = self._stats(msg["stats"], first)
                    return
                elif msg.get("ev") == "error":
                    self.stats = Stats(stop_reason="error", error=msg["message"])
                    raise EngineError(f"Generation failed: {msg['message']}")
        finally:
            if self.stats is None and engine._runner is runner:
                # The caller left early (break, exception): stop and read up to the end marker.
                engine.stop()
                self._drain(runner)

    def _drain(self, runner: _Runner) -> None:
        while True:
            msg = runner.receive()
            if msg is None:
                self.engine._died("Stopping")
                return
            if msg.get("ev") in ("done", "error"):
                self.stats = self._stats(msg.get("stats", {}), None)
                self.stats.stop_reason = "cancelled"
                return

    def _stats(self, raw: dict, first: float | None) -> Stats:
        known = {k: v for k, v in raw.items() if k in Stats.__dataclass_fields__}
        stats = Stats(**known)
        stats.ttft_s = first if first is not None else stats.ttft_s
        if self.stopped:
            stats.stop_reason = "cancelled"
        return stats

    def run(self, on_piece: Callable[[str], None] | None = None) -> Stats:
        """Consume the whole stream (optionally passing each piece on) and return the stats."""
        for piece in self:
            if on_piece:
                on_piece(piece)
        assert self.stats is not None
        return self.stats
