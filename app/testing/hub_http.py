"""The HTTP side of the local test hub (app/testing/hub_server.py): what one request gets.

`_Handler` answers the hub's API and resolve URLs, `_CdnHandler` the download host's signed URLs;
both read the registry, faults and logs of their `LocalHub` (`handler.hub`). `Faults` says how a
file misbehaves, `RequestLog` what a request asked and got. Not used by the product at run time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    from app.testing.hub_server import LocalHub

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
