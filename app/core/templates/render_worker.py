"""Render templates that are not Corral's own in a child process bounded in time and memory.

A chat template inside a model file is a stranger's code. The sandbox (sandbox.py) stops it
reaching Python internals, and its limits catch most huge values early, but one C-level
operation (a huge power, a huge string method) holds the GIL and cannot be interrupted, and
Jinja's own quirks have let such operations run outside every check before. So the untrusted
template compiles and renders here, in a long-lived child process:

- started isolated by app.core.child (`python -I`, a fixed working directory, no secrets in
  its environment; a frozen app runs its own executable with --corral-render-worker), as a
  new program, never by forking the caller (the GUI has threads);
- its address space is limited (RLIMIT_AS, MEMORY_LIMIT bytes), so a huge value ends in
  MemoryError, not in the machine swapping;
- the parent waits for the reply on a pipe (which releases the GIL: a server's other requests
  go on) for at most the deadline plus a grace, then kills the worker and starts another on
  the next render; the worker also arms SIGALRM so that it dies by itself if the parent is gone;
- a reply is size-limited on both sides.

Windows has no RLIMIT_AS: there the wall-clock kill, the sandbox's size checks and the reply
size limit are the bounds; memory is not capped by the operating system.

Several threads may render at once (the GUI, `corral serve`'s engine thread, the CLI): a small
pool gives each its own worker, at most MAX_WORKERS, and makes the others wait.

Protocol: frames of a 4-byte big-endian length and a JSON object (ASCII-escaped, so lone
surrogates in a message survive). The worker first sends {"ready": pid}; then, per request
{"source", "name", "seconds", "jobs": [variables, …]}, it answers {"results": [{"text",
"notes"} | {"error", "fault"}, …], "exit": bool}.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import struct
import subprocess
import sys
import threading
from collections import OrderedDict
from typing import Any, BinaryIO

from app.core.child import start_child
from app.core.templates import sandbox
from app.core.templates.limits import MAX_OUTPUT_CHARS
from app.core.templates.model import TemplateError

MEMORY_LIMIT = 1_000_000_000  # bytes of address space for the worker (not on Windows)
GRACE_SECONDS = 0.25          # after the deadline, before the parent kills the worker
START_SECONDS = 60.0          # a worker that cannot start in this long is a broken install
MAX_WORKERS = 3
MAX_BATCH_CHARS = 4 * MAX_OUTPUT_CHARS  # all texts of one reply together
_MAX_FRAME = 8 * MAX_BATCH_CHARS + 65536  # JSON escapes take up to 6 bytes a character
# Test hook: "no-limits" makes the worker render without the sandbox's size limits and with
# jinja's compile-time folding, to show that the process bounds hold whatever the template
# does. Unset in normal use.
TEST_ENV = "CORRAL_RENDER_WORKER_TEST"
TIMEOUT = object()
FLAG = "--corral-render-worker"  # app.cli.main() runs main() below when it sees this


# ------------------------------------------------------------------ the worker (child) side

def _read_frame(stream: BinaryIO, limit: int = _MAX_FRAME) -> Any:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (size,) = struct.unpack(">I", head)
    if size > limit:
        return None
    data = stream.read(size)
    return json.loads(data) if len(data) == size else None


def _write_frame(stream: BinaryIO, obj: Any) -> None:
    data = json.dumps(obj, ensure_ascii=True).encode("ascii")
    stream.write(struct.pack(">I", len(data)) + data)
    stream.flush()


def _limit_memory() -> None:
    try:
        import resource
    except ImportError:  # Windows: see the module docstring
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (OSError, ValueError):  # a system that refuses it: the deadline still holds
        pass


def _alarm(seconds: float) -> None:
    """SIGALRM's default action ends the process without needing the GIL: the worker cannot
    outlive a lost parent by more than a deadline, whatever it is computing."""
    import signal
    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_REAL, seconds)


def _serve(request: dict[str, Any]) -> dict[str, Any]:
    from app.core.templates.system_role import render_chat

    source, name, seconds = request["source"], request["name"], float(request["seconds"])
    results: list[dict[str, Any]] = []
    total = 0
    fault: dict[str, Any] | None = None
    for variables in request["jobs"]:
        if fault is not None:  # the template fails whatever the conversation: stop here
            results.append(fault)
            continue
        try:
            text, notes = render_chat(source, name, variables, seconds)
            total += len(text)
            if total > MAX_BATCH_CHARS:
                raise sandbox.TemplateFault(f"{name}: refused by the sandbox: the output "
                                            f"passed {MAX_BATCH_CHARS:,} characters")
            results.append({"text": text, "notes": notes})
        except TemplateError as exc:
            entry = {"error": str(exc), "fault": isinstance(exc, sandbox.TemplateFault)}
            results.append(entry)
            if entry["fault"]:
                fault = entry
    # After a MemoryError the heap may be in pieces: start afresh rather than limp on.
    ended = fault is not None and fault["error"].endswith(sandbox.TOO_BIG)
    return {"results": results, "exit": ended}


def main() -> int:
    """The worker's loop: one request at a time until the parent closes the pipe."""
    _limit_memory()
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "wb")
    sys.stdout = sys.stderr  # nothing printed by accident may corrupt the protocol
    import app.core.templates.system_role  # noqa: F401  (imported before saying ready)

    if os.environ.get(TEST_ENV) == "no-limits":
        sandbox.drop_limits_for_tests()

    _write_frame(replies, {"ready": os.getpid()})
    while True:
        try:
            request = _read_frame(requests)
        except (OSError, ValueError):
            return 1
        if request is None:
            return 0
        _alarm(float(request.get("seconds", sandbox.DEADLINE_SECONDS)) + 2 * GRACE_SECONDS + 1)
        try:
            reply = _serve(request)
        except MemoryError:
            reply = {"results": [{"error": f"{request.get('name')}: {sandbox.TOO_BIG}",
                                  "fault": True}] * len(request.get("jobs", [])), "exit": True}
        _alarm(0)
        _write_frame(replies, reply)
        if reply["exit"]:
            return 0


# ------------------------------------------------------------------ the parent side

class _Worker:
    def __init__(self) -> None:
        # One malloc arena: each thread's own arena would reserve 64 MB of the address space.
        self.proc = start_child("app.core.templates.render_worker", FLAG,
                                env={"MALLOC_ARENA_MAX": "1"}, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.replies: queue.Queue[Any] = queue.Queue()
        threading.Thread(target=self._read, name="corral-render-reader", daemon=True).start()
        try:
            hello = self.replies.get(timeout=START_SECONDS)
        except queue.Empty:
            hello = None
        if not isinstance(hello, dict) or "ready" not in hello:
            self.kill()
            raise TemplateError("the template renderer (a helper process) could not start")
        self.pid = int(hello["ready"])

    def _read(self) -> None:
        stream = self.proc.stdout
        while True:
            try:
                frame = _read_frame(stream)
            except (OSError, ValueError):
                frame = None
            self.replies.put(frame)
            if frame is None:
                return

    def ask(self, request: dict[str, Any], timeout: float) -> Any:
        """The reply; None when the worker died or broke the protocol; TIMEOUT."""
        try:
            _write_frame(self.proc.stdin, request)
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            return TIMEOUT
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=1)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


class _Pool:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._count = 0
        self._exiting = False

    def acquire(self) -> _Worker:
        with self._cond:
            while not self._idle and self._count >= MAX_WORKERS:
                self._cond.wait()
            if self._idle:
                return self._idle.pop()
            self._count += 1
        try:
            return _Worker()
        except BaseException:
            self.release(None)
            raise

    def release(self, worker: _Worker | None) -> None:
        """Give a healthy worker back, or None for one that was killed (or never started)."""
        with self._cond:
            if worker is not None and not self._exiting:
                self._idle.append(worker)
            else:
                self._count -= 1
            self._cond.notify()
        if worker is not None and self._exiting:
            worker.close()

    def drain(self, exiting: bool = False) -> None:
        """Close the idle workers; busy ones are closed when they come back if exiting."""
        with self._cond:
            self._exiting = self._exiting or exiting
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for worker in idle:
            worker.close()

    def close(self) -> None:
        self.drain(exiting=True)


_POOL = _Pool()
atexit.register(_POOL.close)


# Templates that failed whatever the conversation (timeout, memory, crash, refused): answered
# at once next time instead of spending the deadline again. Keyed by the template text.
_FAULTS: OrderedDict[str, str] = OrderedDict()
_FAULTS_LOCK = threading.Lock()


def _remember(source: str, message: str, name: str) -> None:
    with _FAULTS_LOCK:
        _FAULTS[source] = message[len(name) + 2:] if message.startswith(name + ": ") \
            else message
        while len(_FAULTS) > 64:
            _FAULTS.popitem(last=False)


def worker_pids() -> list[int]:
    """The process ids of the idle workers (for tests and diagnostics)."""
    with _POOL._cond:
        return [worker.pid for worker in _POOL._idle]


def reset() -> None:
    """Close the idle workers and forget the failed templates: the next render starts a
    worker afresh, with the environment as it is then (tests use TEST_ENV)."""
    _POOL.drain()
    with _FAULTS_LOCK:
        _FAULTS.clear()


def render_untrusted(source: str, name: str, jobs: list[dict[str, Any]]
                     ) -> list[tuple[str, list[str]] | TemplateError]:
    """Render each job's variables with `source` in a worker: (text, notes) or the
    TemplateError for each. Raises TemplateError when the template failed for all of them."""
    sandbox.check_jinja_version(name)
    with _FAULTS_LOCK:
        known = _FAULTS.get(source)
    if known is not None:
        raise sandbox.TemplateFault(f"{name}: {known}")
    seconds = sandbox.DEADLINE_SECONDS
    worker = _POOL.acquire()
    reply = worker.ask({"source": source, "name": name, "seconds": seconds, "jobs": jobs},
                       seconds + GRACE_SECONDS)
    if not isinstance(reply, dict) or len(reply.get("results", ())) != len(jobs):
        worker.kill()
        _POOL.release(None)
        message = (f"{name}: {sandbox.too_slow(seconds)}" if reply is TIMEOUT else
                   f"{name}: the template stopped the renderer (it ran out of memory or "
                   f"crashed)")
        _remember(source, message, name)
        raise sandbox.TemplateFault(message)
    if reply.get("exit"):
        worker.close()
        _POOL.release(None)
    else:
        _POOL.release(worker)
    out: list[tuple[str, list[str]] | TemplateError] = []
    for result in reply["results"]:
        if "text" in result:
            out.append((str(result["text"]), [str(n) for n in result.get("notes", ())]))
        elif result.get("fault"):
            _remember(source, str(result["error"]), name)
            out.append(sandbox.TemplateFault(str(result["error"])))
        else:
            out.append(TemplateError(str(result["error"])))
    if all(isinstance(r, sandbox.TemplateFault) for r in out) and out:
        raise out[0]
    return out
