"""A real, local Hugging Face hub for tests and benchmarks: `huggingface_hub` talks to it over HTTP.

    with LocalHub() as hub:
        hub.add_file("org/repo-GGUF", "model.Q4_K_M.gguf", path_or_bytes)
        HubClient(endpoint=hub.url)...

It answers what `huggingface_hub` asks (see FACTS.md): model info, the file tree (paginated with a
`Link` header), model search, and HEAD/GET on `/{repo}/resolve/{rev}/{file}` with `X-Repo-Commit`,
`ETag` / `X-Linked-Etag` (the sha256 of LFS files), `X-Linked-Size`, `Content-Length`, `Range` → 206.
Errors carry `X-Error-Code` (RepoNotFound, EntryNotFound, RevisionNotFound, GatedRepo). Gated repos
need `Authorization: Bearer <hub.token>`.

Like the real hub, `LocalHub(cdn=True)` answers HEAD and GET on an LFS file with a 302 to a second
server, the download host (`hub.cdn_url`, on 127.0.0.2 where the system has it, else another
port of 127.0.0.1): the file's size, sha256 and commit ride on the redirect, and the bytes come
from a signed URL that honours Range, refuses a URL it did not sign, and refuses a request that
carries an `Authorization` header (as S3-style hosts do: a token must never follow the redirect).
`xet=True` adds the `X-Xet-*` headers and `Link: …; rel="xet-auth"` the real hub sends for files
in Xet storage; a client that follows them shows up in `hub.requests` (the route answers 404).

Misbehaviour is set per file with `hub.set_faults(repo, file, ...)` (see `Faults`); it applies to
requests that start afterwards, body faults where the body is served (the download host when
there is one). `hub.set_api_answer(path, body)` replaces one API answer with anything (hostile
JSON shapes, bytes that are not JSON). Every request is logged (`hub.requests`, with its host and
whether it carried a token) with the body bytes it sent, counted while it runs, so tests can
assert how much was re-sent and wait for progress (`hub.wait_for_bytes`). Not used by the
product at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

from app.testing.hub_http import (CHUNK, Faults, RequestLog, _CdnHandler, _File, _Handler, _Repo,  # noqa: F401
                                  _serve, _sha256_of)
class LocalHub:
    """The server plus its registry. Thread-safe; use as a context manager (or start()/stop())."""

    def __init__(self, token: str | None = "hf_local_test_token", tree_page_size: int = 1000, *,
                 cdn: bool = False, xet: bool = False):
        self.token = token
        self.tree_page_size = tree_page_size
        self.cdn = cdn
        self.xet = xet
        self.requests: list[RequestLog] = []
        self._signed: dict[str, tuple[str, str]] = {}  # signature -> (repo, file) for the download host
        self._api_answers: dict[str, bytes] = {}
        self._api_faults: dict[str, list] = {}
        self._repos: dict[str, _Repo] = {}
        self._faults: dict[tuple[str, str], Faults] = {}
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._release = threading.Event()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._cdn_server: ThreadingHTTPServer | None = None
        self._cdn_thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------
    def start(self) -> "LocalHub":
        hub = self

        class Handler(_Handler):
            pass

        class CdnHandler(_CdnHandler):
            pass

        Handler.hub = CdnHandler.hub = hub
        self._server, self._thread = _serve(Handler, "127.0.0.1", "local-hub")
        if self.cdn:
            try:  # another host, as the real download host is (Linux routes all of 127/8 here)
                self._cdn_server, self._cdn_thread = _serve(CdnHandler, "127.0.0.2", "local-hub-cdn")
            except OSError:
                self._cdn_server, self._cdn_thread = _serve(CdnHandler, "127.0.0.1", "local-hub-cdn")
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._release.set()
        for server, thread in ((self._server, self._thread), (self._cdn_server, self._cdn_thread)):
            if server is not None:
                server.shutdown()
                server.server_close()
                thread.join(timeout=5)
        self._server = self._cdn_server = None

    def __enter__(self) -> "LocalHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the hub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cdn_url(self) -> str:
        assert self._cdn_server is not None, "make the hub with cdn=True and start it"
        host, port = self._cdn_server.server_address[:2]
        return f"http://{host}:{port}"

    def _sign(self, repo_id: str, filename: str, commit: str) -> str:
        """A download-host URL for one file, like the hub's signed redirect targets."""
        signature = hashlib.sha256(os.urandom(16)).hexdigest()
        with self._lock:
            self._signed[signature] = (repo_id, filename)
        return (f"{self.cdn_url}/repos/{commit[:2]}/{commit}/{quote(filename, safe='')}"
                f"?X-Amz-Expires=3600&X-Amz-Signature={signature}")

    def set_api_fault(self, path: str, *, stall_seconds: float | None = None, status: int | None = None,
                      times: int = 1) -> None:
        """The next `times` GETs of API `path` stall for `stall_seconds` before answering (cut short
        by stop()) and/or answer `status` instead."""
        with self._lock:
            self._api_faults[path] = [stall_seconds, status, times]

    def set_api_answer(self, path: str, body: object) -> None:
        """Answer GET `path` (e.g. "/api/models/org/repo/tree/main") with `body` from now on:
        bytes as they are, anything else as JSON. Query strings are ignored when matching."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        with self._lock:
            self._api_answers[path] = raw

    def resolve_url(self, repo_id: str, filename: str, revision: str = "main") -> str:
        return f"{self.url}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}"

    # -- registry ---------------------------------------------------------------------------
    def add_repo(self, repo_id: str, *, gated: bool | None = None, downloads: int | None = None,
                 likes: int | None = None, tags: list[str] | None = None,
                 last_modified: str | None = None) -> None:
        """Create a repository or change the fields given (None: keep)."""
        changes = {"gated": gated, "downloads": downloads, "likes": likes,
                   "tags": None if tags is None else list(tags), "last_modified": last_modified}
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo(repo_id))
            for name, value in changes.items():
                if value is not None:
                    setattr(repo, name, value)
            self._rehash(repo)

    def add_file(self, repo_id: str, filename: str, source: bytes | str | Path, *,
                 sha256: str | None = None, lfs: bool = True) -> str:
        """Serve `source` (bytes in memory, or a file on disk read at request time). Returns its sha256.

        Adding a file again (new content) changes the repo's commit and the file's ETag."""
        data = source if isinstance(source, bytes) else None
        path = None if data is not None else Path(source)
        size = len(data) if data is not None else path.stat().st_size
        digest = sha256 or _sha256_of(data if data is not None else path)
        git_oid = hashlib.sha1(f"blob {size}\0{digest}".encode()).hexdigest()
        with self._lock:
            repo = self._repos.setdefault(repo_id, _Repo(repo_id))
            repo.files[filename] = _File(data, path, size, digest, git_oid, lfs)
            self._rehash(repo)
        return digest

    def commit(self, repo_id: str) -> str:
        with self._lock:
            return self._repos[repo_id].sha

    @staticmethod
    def _rehash(repo: _Repo) -> None:
        h = hashlib.sha1(repo.repo_id.encode())
        for name in sorted(repo.files):
            h.update(f"{name}\0{repo.files[name].sha256}\0".encode())
        repo.sha = h.hexdigest()

    # -- faults -----------------------------------------------------------------------------
    def set_faults(self, repo_id: str, filename: str, **settings) -> None:
        """Replace the faults of one file, e.g. set_faults(r, f, drop_after=1 << 20)."""
        with self._lock:
            self._faults[(repo_id, filename)] = Faults(**settings)

    def clear_faults(self, repo_id: str | None = None, filename: str | None = None) -> None:
        with self._lock:
            if repo_id is None:
                self._faults.clear()
            else:
                self._faults.pop((repo_id, filename), None)

    def release_stalls(self) -> None:
        """Let every stalled response (stall_seconds=None) go on sending; later ones do not stall."""
        self._release.set()

    def _take_faults(self, repo_id: str, filename: str, method: str, rng: str | None,
                     part: str = "all") -> Faults:
        """The faults for one new request; counted ones are used up here. `part`: "status" (the
        hub's side when a download host serves the body), "body" (the download host) or "all"."""
        with self._lock:
            f = self._faults.get((repo_id, filename))
            if f is None:
                return Faults()
            now = replace(f)
            bounded = bool(rng and re.fullmatch(r"bytes=\d+-\d+", rng.strip()))
            aimed = method != "GET" or f.applies_to == "all" or (f.applies_to == "header") == bounded
            for name in ("status", "drop_after", "stall_after"):
                times_attr = name.split("_")[0] + "_times"
                if getattr(f, name) is None:
                    continue
                if name == "status":
                    applies = method in f.status_methods and part != "body"
                elif name == "stall_after":  # (a HEAD is answered by the hub even with a download host)
                    applies = method in f.stall_methods and (part != "status" or method == "HEAD")
                else:
                    applies = method == "GET" and part != "status"
                if not applies or not aimed:
                    setattr(now, name, None)
                    continue
                times = getattr(f, times_attr)
                if times is not None:
                    if times <= 0:
                        setattr(now, name, None)
                    else:
                        setattr(f, times_attr, times - 1)
            if not aimed or part == "status":
                now.corrupt_offset, now.throttle, now.ignore_range = None, None, False
            return now

    # -- statistics ---------------------------------------------------------------------------
    def bytes_sent(self, repo_id: str, filename: str) -> int:
        with self._lock:
            return sum(r.bytes_sent for r in self.requests if (r.repo_id, r.filename) == (repo_id, filename))

    def file_requests(self, repo_id: str, filename: str, method: str = "GET") -> list[RequestLog]:
        with self._lock:
            return [replace(r) for r in self.requests
                    if (r.repo_id, r.filename, r.method) == (repo_id, filename, method)]

    def wait_for_bytes(self, repo_id: str, filename: str, at_least: int, timeout: float = 30) -> bool:
        """Wait until the hub has sent at least this many body bytes of one file (all requests)."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while True:
                sent = sum(r.bytes_sent for r in self.requests if (r.repo_id, r.filename) == (repo_id, filename))
                left = deadline - time.monotonic()
                if sent >= at_least:
                    return True
                if left <= 0:
                    return False
                self._progress.wait(left)

    def wait_idle(self, timeout: float = 10) -> bool:
        """Wait until every file request has finished on the server side (its handler returned)."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while any(not r.finished for r in self.requests if r.filename is not None):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait(left)
            return True

    def _finish(self, entry: RequestLog) -> None:
        with self._progress:
            entry.finished, entry.ended = True, time.monotonic()
            self._progress.notify_all()

    def _log(self, entry: RequestLog) -> RequestLog:
        with self._lock:
            self.requests.append(entry)
        return entry

    def _count(self, entry: RequestLog, n: int) -> None:
        with self._progress:
            entry.bytes_sent += n
            self._progress.notify_all()

    # -- views used by the handler -------------------------------------------------------------
    def _repo(self, repo_id: str) -> _Repo | None:
        with self._lock:
            return self._repos.get(repo_id)

    def _search(self, params: dict[str, list[str]]) -> list[dict]:
        query = (params.get("search") or [""])[0].lower()
        filters = params.get("filter", [])
        author = (params.get("author") or [None])[0]
        sort = (params.get("sort") or [None])[0]
        limit = int((params.get("limit") or [1000])[0])
        with self._lock:
            repos = [r for r in self._repos.values()
                     if query in r.repo_id.lower() and all(t in r.tags for t in filters)
                     and (author is None or r.repo_id.split("/")[0] == author)]
            keys = {"downloads": lambda r: r.downloads, "likes": lambda r: r.likes,
                    "lastModified": lambda r: r.last_modified, "createdAt": lambda r: r.created_at,
                    "trendingScore": lambda r: r.likes}
            if sort in keys:
                repos.sort(key=keys[sort], reverse=True)
            return [self._summary(r) for r in repos[:limit]]

    @staticmethod
    def _summary(r: _Repo) -> dict:
        return {"_id": r.sha[:24], "id": r.repo_id, "modelId": r.repo_id, "author": r.repo_id.split("/")[0],
                "downloads": r.downloads, "likes": r.likes, "tags": list(r.tags), "private": False,
                "gated": "manual" if r.gated else False, "lastModified": r.last_modified,
                "createdAt": r.created_at, "library_name": "gguf"}


def corral_command() -> list[str]:
    """The argv prefix that runs `corral` as users get it, in a child process."""
    return [sys.executable, "-m", "app"]


def start_corral(hub: LocalHub, home: str | os.PathLike, *argv: str, **popen) -> subprocess.Popen:
    """`corral ARGV` as users run it, in a child process on Corral home `home` (CORRAL_HOME)
    against `hub` (HF_ENDPOINT), with no token from the environment; text stdout and stderr are
    pipes. Ctrl+C (SIGINT) works in the child even when the test run itself was started in the
    background (a shell starts background jobs with SIGINT ignored and children inherit that;
    Python then installs no KeyboardInterrupt handler)."""
    env = {**os.environ, "CORRAL_HOME": str(home), "HF_ENDPOINT": hub.url,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                      os.environ.get("PYTHONPATH")])),
           **popen.pop("env", {})}
    env.pop("HF_TOKEN", None)
    if os.name == "posix":
        popen.setdefault("preexec_fn", lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return subprocess.Popen([*corral_command(), *argv], env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **popen)


try:  # a pytest fixture for test modules: `from app.testing.hub_server import local_hub`
    import pytest
except ImportError:  # bench scripts run without pytest
    pytest = None

if pytest is not None:
    @pytest.fixture
    def local_hub(monkeypatch):
        """A started LocalHub; HF_ENDPOINT points at it (pass endpoint= too: huggingface_hub reads it at import)."""
        with LocalHub() as hub:
            monkeypatch.setenv("HF_ENDPOINT", hub.url)
            yield hub
