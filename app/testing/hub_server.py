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
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

CHUNK = 256 * 1024


@dataclass
class Faults:
    """How the hub misbehaves for one file. `*_times`: how many requests it happens to (None: all)."""

    status: int | None = None          # answer 404 / 401 / 403 / 500 ... instead of the file
    status_times: int | None = None
    status_methods: tuple[str, ...] = ("HEAD", "GET")
    drop_after: int | None = None      # close the connection after this many body bytes
    drop_times: int | None = 1
    stall_after: int | None = None     # stop sending after this many body bytes ...
    stall_seconds: float | None = None  # ... for this long (None: until release_stalls() or stop())
    stall_times: int | None = 1
    stall_methods: tuple[str, ...] = ("GET",)  # HEAD: the answer stalls before its headers
    corrupt_offset: int | None = None  # serve this byte of the file wrong (every time)
    ignore_range: bool = False         # answer 200 with the whole body whatever Range says
    throttle: int | None = None        # bytes per second per response
    # Which GETs the faults above apply to: "all", "header" (a bounded Range, bytes=a-b, as the
    # header check asks) or "transfer" (no Range or an open one, bytes=a-, as a download asks).
    applies_to: str = "all"
    bare: bool = False                 # answer with no size, ETag, sha256 or commit headers


@dataclass
class RequestLog:
    method: str
    path: str
    repo_id: str | None = None
    filename: str | None = None
    range: str | None = None
    host: str = "hub"                  # "hub", or "cdn" for the download host
    authorization: str | None = None   # the Authorization header it carried
    status: int = 0
    bytes_sent: int = 0
    finished: bool = False
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None


@dataclass
class _File:
    data: bytes | None
    path: Path | None
    size: int
    sha256: str
    git_oid: str
    lfs: bool


@dataclass
class _Repo:
    repo_id: str
    files: dict[str, _File] = field(default_factory=dict)
    gated: bool = False
    downloads: int = 0
    likes: int = 0
    tags: list[str] = field(default_factory=lambda: ["gguf"])
    last_modified: str = "2024-01-01T00:00:00.000Z"
    created_at: str = "2023-01-01T00:00:00.000Z"
    sha: str = "0" * 40


class _Dropped(Exception):
    pass


def _sha256_of(source: bytes | Path) -> str:
    h = hashlib.sha256()
    if isinstance(source, bytes):
        h.update(source)
    else:
        with open(source, "rb") as f:
            while block := f.read(4 << 20):
                h.update(block)
    return h.hexdigest()


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


class _Handler(BaseHTTPRequestHandler):
    hub: LocalHub
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"

    def log_message(self, format, *args):  # quiet
        pass

    # -- plumbing ----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, headers: dict | None = None) -> None:
        self._send(200, json.dumps(obj).encode(), headers)

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def _authorized(self) -> bool:
        return bool(self.hub.token) and self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def _new_log(self, path: str, repo_id: str | None = None, filename: str | None = None,
                 host: str = "hub") -> RequestLog:
        return self.hub._log(RequestLog(self.command, path, repo_id, filename, self.headers.get("Range"),
                                        host=host, authorization=self.headers.get("Authorization")))

    def do_HEAD(self):
        self._dispatch()

    def do_GET(self):
        self._dispatch()

    def _dispatch(self):
        url = urlsplit(self.path)
        path = unquote(url.path)
        params = parse_qs(url.query)
        try:
            if "/resolve/" in path and not path.startswith("/api/"):
                return self._resolve(url.path)
            self._new_log(self.path)  # API calls are logged too
            with self.hub._lock:
                replaced = self.hub._api_answers.get(path)
                fault = self.hub._api_faults.get(path)
                if fault is not None and fault[2] > 0:
                    fault[2] -= 1
                    stall_seconds, status = fault[0], fault[1]
                    fault = (stall_seconds, status)
                else:
                    fault = None
            if fault is not None:
                if fault[0] is not None:
                    self._stall(Faults(stall_seconds=fault[0]))
                if fault[1] is not None:
                    return self._error(fault[1], None, f"injected {fault[1]}")
            if replaced is not None:
                return self._send(200, replaced)
            if path == "/api/models" or path == "/api/models/":
                return self._json(self.hub._search(params))
            if path.startswith("/api/models/"):
                return self._api_model(path[len("/api/models/"):], params)
            self._error(404, None, "Not Found")
        except (BrokenPipeError, ConnectionResetError, _Dropped):
            self.close_connection = True

    def _split_repo(self, rest: str) -> tuple[_Repo | None, str, list[str]]:
        parts = rest.strip("/").split("/")
        for n in (2, 1):
            repo = self.hub._repo("/".join(parts[:n]))
            if repo is not None:
                return repo, repo.repo_id, parts[n:]
        return None, "/".join(parts[:2]), parts[2:]

    def _revision_ok(self, repo: _Repo, rev: str) -> bool:
        return rev in ("main", repo.sha)

    # -- API ---------------------------------------------------------------------------------
    def _api_model(self, rest: str, params: dict) -> None:
        repo, repo_id, tail = self._split_repo(rest)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository not found: {repo_id}")
        rev = "main"
        if tail[:1] == ["revision"] and len(tail) >= 2:
            rev = unquote(tail[1])
        elif tail[:1] == ["tree"] and len(tail) >= 2:
            rev = unquote(tail[1])
            if not self._revision_ok(repo, rev):
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return self._tree(repo, "/".join(tail[2:]), params)
        elif tail:
            return self._error(404, None, "Not Found")
        if not self._revision_ok(repo, rev):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        info = self.hub._summary(repo)
        info["sha"] = repo.sha
        info["siblings"] = [
            {"rfilename": name, "size": f.size, "blobId": f.git_oid,
             **({"lfs": {"sha256": f.sha256, "size": f.size, "pointerSize": 135}} if f.lfs else {})}
            for name, f in sorted(repo.files.items())]
        self._json(info)

    def _tree(self, repo: _Repo, under: str, params: dict) -> None:
        recursive = (params.get("recursive") or ["false"])[0].lower() == "true"
        names = sorted(repo.files)
        entries: list[dict] = []
        folders: set[str] = set()
        prefix = under.strip("/") + "/" if under.strip("/") else ""
        for name in names:
            if not name.startswith(prefix):
                continue
            rel = name[len(prefix):]
            if "/" in rel and not recursive:
                folder = prefix + rel.split("/")[0]
                if folder not in folders:
                    folders.add(folder)
                    entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": folder})
                continue
            f = repo.files[name]
            entry = {"type": "file", "oid": f.git_oid, "size": f.size, "path": name}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 135}
            entries.append(entry)
        start = int((params.get("cursor") or ["0"])[0])
        page = entries[start:start + self.hub.tree_page_size]
        headers = {}
        if start + self.hub.tree_page_size < len(entries):
            base = self.path.split("?")[0]
            nxt = f"{self.hub.url}{base}?recursive={str(recursive).lower()}&cursor={start + self.hub.tree_page_size}"
            headers["Link"] = f'<{nxt}>; rel="next"'
        self._json(page, headers)

    # -- resolve -----------------------------------------------------------------------------
    def _resolve(self, raw_path: str) -> None:
        head, _, tail = raw_path.partition("/resolve/")
        repo_id = unquote(head.strip("/"))
        rev_quoted, _, file_quoted = tail.partition("/")
        rev, filename = unquote(rev_quoted), unquote(file_quoted)
        log = self._new_log(raw_path, repo_id, filename)
        try:
            self._serve_file(log, repo_id, rev, filename)
        finally:
            self.hub._finish(log)

    def _serve_file(self, log: RequestLog, repo_id: str, rev: str, filename: str) -> None:
        repo = self.hub._repo(repo_id)
        f = repo.files.get(filename) if repo is not None else None
        offsite = bool(self.hub.cdn and f is not None and f.lfs)  # the body comes from the download host
        faults = self.hub._take_faults(repo_id, filename, self.command, self.headers.get("Range"),
                                       "status" if offsite else "all")
        if faults.status is not None:
            log.status = faults.status
            code = {404: "EntryNotFound", 401: "GatedRepo", 403: "GatedRepo"}.get(faults.status)
            return self._error(faults.status, code, f"injected {faults.status}")
        if repo is None:
            log.status = 404
            return self._error(404, "RepoNotFound", f"Repository not found: {repo_id}")
        if not self._revision_ok(repo, rev):
            log.status = 404
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        if repo.gated and not self._authorized():
            status = 403 if self.headers.get("Authorization") else 401
            log.status = status
            return self._error(status, "GatedRepo",
                               f"Access to model {repo_id} is restricted. You must be authenticated to access it.")
        if f is None:
            log.status = 404
            return self._error(404, "EntryNotFound", f"{filename} does not exist on {rev}")
        headers = {} if faults.bare else {
            "X-Repo-Commit": repo.sha,
            "ETag": f'"{f.sha256}"' if f.lfs else f'"{f.git_oid}"',
        }
        if f.lfs and not faults.bare:
            headers["X-Linked-Etag"] = f'"{f.sha256}"'
            headers["X-Linked-Size"] = str(f.size)
        if self.hub.xet and f.lfs:
            route = f"/api/models/{repo_id}/xet-read-token/{repo.sha}"
            headers["X-Xet-Hash"] = hashlib.sha256(f.sha256.encode()).hexdigest()
            headers["X-Xet-Refresh-Route"] = f"{self.hub.url}{route}"
            headers["Link"] = f'<{self.hub.url}{route}>; rel="xet-auth"'
        if offsite:
            if faults.stall_after is not None and self.command == "HEAD":
                self._stall(faults)
            log.status = 302
            headers["Location"] = self.hub._sign(repo_id, filename, repo.sha)
            return self._send(302, b"", headers, content_type="text/plain")
        self._send_file(log, f, faults, headers)

    def _stall(self, faults: Faults) -> None:
        if faults.stall_seconds is None:
            self.hub._release.wait()
        else:
            self.hub._stopping.wait(faults.stall_seconds)
        if self.hub._stopping.is_set():
            raise _Dropped()

    def _send_file(self, log: RequestLog, f: _File, faults: Faults, headers: dict) -> None:
        """Headers, then (for GET) the body of `f`, honouring Range unless told not to."""
        if self.command == "HEAD" and faults.stall_after is not None:
            self._stall(faults)  # a HEAD stalls before its answer (it has no body to stall in)
        start, end = 0, f.size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng and not faults.ignore_range:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (m.group(1) == "" and m.group(2) == ""):
                log.status = 416
                return self._send(416, b"", {"Content-Range": f"bytes */{f.size}"})
            if m.group(1) == "":
                start = max(0, f.size - int(m.group(2)))
            else:
                start = int(m.group(1))
                if m.group(2):
                    end = min(end, int(m.group(2)))
            if start >= f.size or start > end:
                log.status = 416
                return self._send(416, b"", {"Content-Range": f"bytes */{f.size}"})
            status = 206
        log.status = status
        headers = {**headers, "Accept-Ranges": "bytes"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{f.size}"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if not (faults.bare and self.command == "HEAD"):
            self.send_header("Content-Length", str(end - start + 1))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        self._body(log, f, start, end + 1, faults)

    def _body(self, log: RequestLog, f: _File, start: int, stop: int, faults: Faults) -> None:
        plain = (faults.drop_after is None and faults.stall_after is None and faults.corrupt_offset is None
                 and faults.throttle is None)
        if plain and f.path is not None:  # the fast path (benchmarks): the kernel copies
            self.wfile.flush()
            with open(f.path, "rb") as src:
                pos = start
                while pos < stop:
                    sent = os.sendfile(self.connection.fileno(), src.fileno(), pos, min(8 << 20, stop - pos))
                    if sent == 0:
                        raise _Dropped()
                    pos += sent
                    self.hub._count(log, sent)
            return
        src = open(f.path, "rb") if f.path is not None else None
        try:
            pos, sent_here, began = start, 0, time.monotonic()
            while pos < stop:
                n = min(CHUNK, stop - pos)
                for limit in (faults.drop_after, faults.stall_after):
                    if limit is not None and sent_here < limit:
                        n = min(n, limit - sent_here)
                if faults.drop_after is not None and sent_here >= faults.drop_after:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    raise _Dropped()
                if faults.stall_after is not None and sent_here >= faults.stall_after:
                    self.wfile.flush()
                    faults.stall_after = None
                    self._stall(faults)
                if faults.throttle:
                    n = min(n, max(1, faults.throttle // 20))
                if src is not None:
                    src.seek(pos)
                    block = src.read(n)
                else:
                    block = f.data[pos:pos + n]
                if faults.corrupt_offset is not None and pos <= faults.corrupt_offset < pos + len(block):
                    i = faults.corrupt_offset - pos
                    block = block[:i] + bytes([block[i] ^ 0xFF]) + block[i + 1:]
                self.wfile.write(block)
                pos += len(block)
                sent_here += len(block)
                self.hub._count(log, len(block))
                if faults.throttle:
                    ahead = sent_here / faults.throttle - (time.monotonic() - began)
                    if ahead > 0 and self.hub._stopping.wait(ahead):
                        raise _Dropped()
            self.wfile.flush()
        finally:
            if src is not None:
                src.close()


class _CdnHandler(_Handler):
    """The download host: serves the bytes of the files the hub signed a URL for."""

    server_version = "LocalHubCdn/1.0"

    def _dispatch(self):
        url = urlsplit(self.path)
        signature = (parse_qs(url.query).get("X-Amz-Signature") or [""])[0]
        with self.hub._lock:
            signed = self.hub._signed.get(signature)
        repo_id, filename = signed or (None, None)
        log = self._new_log(self.path, repo_id, filename, host="cdn")
        try:
            if signed is None:
                log.status = 403
                return self._send(403, b"<Error><Code>AccessDenied</Code></Error>", content_type="application/xml")
            if self.headers.get("Authorization"):
                # S3-style hosts refuse a second way of signing: the hub's token must not come here
                log.status = 400
                return self._send(400, b"<Error><Code>InvalidArgument</Code><Message>Only one auth "
                                       b"mechanism allowed</Message></Error>", content_type="application/xml")
            repo = self.hub._repo(repo_id)
            f = repo.files.get(filename) if repo is not None else None
            if f is None:
                log.status = 404
                return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>", content_type="application/xml")
            faults = self.hub._take_faults(repo_id, filename, self.command, self.headers.get("Range"), "body")
            self._send_file(log, f, faults, {} if faults.bare else {"ETag": f'"{f.sha256}"'})
        except (BrokenPipeError, ConnectionResetError, _Dropped):
            self.close_connection = True
        finally:
            self.hub._finish(log)


def _serve(handler, host: str, name: str) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer((host, 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name,
                              daemon=True)
    thread.start()
    return server, thread


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
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **popen.pop("env", {})}
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
