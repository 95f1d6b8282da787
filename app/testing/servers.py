"""Real OpenAI-compatible servers for tests, on 127.0.0.1, stopped on exit:

    with llama_cpp_server(model_path, api_key="k") as url: ...   # llama-cpp-python's server
    with corral_serve(home, api_key="k") as url: ...             # the shipped `corral serve`

Each yields its base URL once the server says it listens (no sleeping: its output is read
until the line that says so, with a deadline); a server that exits first fails with its output.
`procs=[]` gets the server's process appended (a test that kills the server mid-reply).
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(stream: TextIO, marker: str, what: str) -> str:
    """The first line of `stream` holding `marker`; RuntimeError (with what was said) if the
    stream ends first or nothing comes in START_TIMEOUT_S."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in stream] + [lines.put(None)],
                     daemon=True).start()
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            raise RuntimeError(f"{what} did not start in {START_TIMEOUT_S} s:\n"
                               + "".join(seen)) from None
        if line is None:
            raise RuntimeError(f"{what} exited:\n" + "".join(seen))
        seen.append(line)
        if marker in line:
            return line


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@contextmanager
def llama_cpp_server(model: Path, *, alias: str = "tiny", api_key: str | None = None,
                     n_ctx: int = 512, procs: list | None = None) -> Iterator[str]:
    """`python -m llama_cpp.server` serving `model` as `alias`; yields http://127.0.0.1:PORT."""
    port = free_port()
    args = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias",
            alias, "--host", "127.0.0.1", "--port", str(port), "--n_threads", "2",
            "--n_ctx", str(n_ctx), "--verbose", "false"]
    if api_key:
        args += ["--api_key", api_key]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if procs is not None:
        procs.append(proc)
    try:
        _wait_for(proc.stderr, "Uvicorn running on", "llama_cpp.server")
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@contextmanager
def corral_serve(home: Path, *, api_key: str | None = None,
                 procs: list | None = None) -> Iterator[str]:
    """`corral serve --port 0` on the models of the Corral home `home` (the key, if any, from
    a file: it stays out of the process list); yields the API base, http://127.0.0.1:PORT/v1."""
    env = dict(os.environ, CORRAL_HOME=str(home), PYTHONUNBUFFERED="1")
    args = [sys.executable, "-m", "app", "serve", "--port", "0", "--threads", "2"]
    if api_key:
        key_file = Path(home) / "serve-key"
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(api_key + "\n", encoding="utf-8")
        args += ["--api-key-file", str(key_file)]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    if procs is not None:
        procs.append(proc)
    try:
        line = _wait_for(proc.stdout, "Serving the OpenAI API at ", "corral serve")
        yield line.split(" at ", 1)[1].split()[0]
    finally:
        _stop(proc)
