"""Everything Corral asks the Hugging Face hub, through `huggingface_hub` (no Qt here).

`HubClient(endpoint=None, token=None, offline=None)`:
- `search(query, sort="downloads"|"likes"|"recent", limit)` → `RepoSummary` list (GGUF repos only);
- `list_gguf_files(repo_id)` → `HubFile` list with size and sha256 (the tree API's LFS info);
- `file_metadata(repo_id, filename, revision)` → `FileMetadata` (url, size, sha256, commit);
- `read_header(repo_id, filename)` → `HeaderCheck`: only the start of the file is fetched, with
  Range requests that grow until the GGUF header is whole, then checked by `app.core.gguf_info`.

The endpoint defaults to `HF_ENDPOINT` (read when the client is made, not at import), the token
to `HF_TOKEN` / the token saved by `hf auth login`, offline to `HF_HUB_OFFLINE`. An offline client
raises `HubError` before any request. Every failure (not found, gated, server error, network
down) becomes one `HubError` whose message says what to do; `kind` tells which it was and
`retryable` whether trying again later may help. The same translation serves the download manager
(`to_hub_error`), which streams with the HTTP client huggingface_hub uses (`http_client()`).
"""

from __future__ import annotations

import importlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import huggingface_hub
from huggingface_hub import get_hf_file_metadata, hf_hub_url
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

try:  # huggingface_hub 2.x ships its HTTP client as httpx2; 1.x used httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

# What huggingface_hub and its HTTP client raise when the hub cannot give an answer.
HUB_FAILURES = (HfHubHTTPError, EntryNotFoundError, OfflineModeIsEnabled, HFValidationError, httpx.HTTPError,
                httpx.StreamError)

SORTS = {"downloads": "downloads", "likes": "likes", "recent": "last_modified"}
HEADER_FIRST_READ = 1 << 20     # the first Range read; doubled until the header fits
HEADER_MAX_BYTES = 64 << 20     # a GGUF header larger than this is not a model we want
# httpcore asks the socket for at most 64 KiB per read, and h11 copies every read twice: a fast
# download spent most of its CPU there (620 MB over 127.0.0.1: 260 MB/s with 64 KiB reads, 450 MB/s
# with 512 KiB; 4 MiB was slower again). READ_NUM_BYTES is that ceiling, a class attribute httpcore
# reads on every call; raising it changes nothing for small answers.
BODY_READ_BYTES = 512 << 10


class HubError(Exception):
    """A hub failure phrased for a person. kind: offline | not_found | gated | server | network | other."""

    def __init__(self, message: str, *, kind: str = "other", status: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.status = status

    @property
    def retryable(self) -> bool:
        return self.kind in ("server", "network")


@dataclass(frozen=True)
class RepoSummary:
    repo_id: str
    author: str | None
    downloads: int
    likes: int
    last_modified: datetime | None
    gated: bool
    tags: tuple[str, ...]


@dataclass(frozen=True)
class HubFile:
    repo_id: str
    filename: str
    size: int
    sha256: str | None  # None for a file kept in git rather than LFS


@dataclass(frozen=True)
class FileMetadata:
    repo_id: str
    filename: str
    revision: str
    url: str            # the resolve URL pinned to `commit`, so the bytes cannot change under us
    size: int | None
    etag: str | None
    sha256: str | None  # the LFS sha256 (the linked ETag), None if the ETag is not one
    commit: str | None


@dataclass(frozen=True)
class HeaderCheck:
    repo_id: str
    filename: str
    file_size: int
    header_bytes: int   # how much of the file was fetched
    info: object        # app.core.gguf_info.ModelInfo

    @property
    def architecture(self) -> str | None:
        return self.info.architecture

    @property
    def context_length(self) -> int | None:
        return self.info.context_length

    @property
    def chat_template(self) -> str | None:
        return self.info.chat_template


def _is_sha256(value: str | None) -> bool:
    return bool(value) and len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower())


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


class HubClient:
    def __init__(self, endpoint: str | None = None, token: str | None = None,
                 offline: bool | None = None, timeout: float = 15.0):
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or hf_constants._HF_DEFAULT_ENDPOINT).rstrip("/")
        self.token = token or None  # None: huggingface_hub finds HF_TOKEN or a saved login
        self.offline = _env_true("HF_HUB_OFFLINE") if offline is None else offline
        self.timeout = timeout
        self._hf_api = None

    @property
    def _api(self):
        """huggingface_hub's HfApi, imported on first use (a pull never needs it: ~0.2 s saved)."""
        if self._hf_api is None:
            from huggingface_hub import HfApi
            self._hf_api = HfApi(endpoint=self.endpoint, token=self.token)
        return self._hf_api

    # -- shared with the download manager ------------------------------------------------------
    def _check_online(self) -> None:
        if self.offline:
            raise HubError("Corral is in offline mode: turn it off in Settings (or unset HF_HUB_OFFLINE) "
                           "to reach the Hugging Face hub.", kind="offline")

    def auth_headers(self) -> dict[str, str]:
        """huggingface_hub's headers (user agent, Authorization when a token is known)."""
        return build_hf_headers(token=self.token)

    def http_client(self):
        """The httpx client huggingface_hub shares (TLS verification on, redirects followed)."""
        self._check_online()
        return huggingface_hub.get_session()

    def raise_for_status(self, response, what: str) -> None:
        """Raise the HubError for a failed response (huggingface_hub parses the error headers)."""
        if response.status_code < 400:
            return
        try:
            response.read()
            hf_raise_for_status(response)
        except HUB_FAILURES as exc:
            raise self.to_hub_error(exc, what) from exc
        raise HubError(f"{what}: the hub answered HTTP {response.status_code}", status=response.status_code)

    def to_hub_error(self, exc: BaseException, what: str) -> HubError:
        """Translate an exception from huggingface_hub or its HTTP client; `what` names the object."""
        if isinstance(exc, HubError):
            return exc
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, OfflineModeIsEnabled):
            return HubError("huggingface_hub is in offline mode (HF_HUB_OFFLINE is set): unset it to "
                            "reach the hub.", kind="offline")
        if isinstance(exc, GatedRepoError) or status in (401, 403) and not isinstance(exc, EntryNotFoundError):
            if isinstance(exc, GatedRepoError) or status == 403:
                return HubError(f"{what} is gated: add a Hugging Face token in Settings (and accept the "
                                "model's license on its hub page).", kind="gated", status=status)
            return HubError(f"{what} was not found, or it is private: check the name, or add a Hugging Face "
                            "token in Settings.", kind="not_found", status=status)
        if isinstance(exc, RevisionNotFoundError):
            return HubError(f"{what}: that revision was not found on the hub.", kind="not_found", status=status)
        if isinstance(exc, EntryNotFoundError):
            return HubError(f"{what} was not found: the repository has no such file.", kind="not_found",
                            status=status)
        if isinstance(exc, RepositoryNotFoundError):
            return HubError(f"{what} was not found on the hub: check the repository name.", kind="not_found",
                            status=status)
        if isinstance(exc, HfHubHTTPError) and status is not None:
            if status >= 500 or status in (408, 429):
                return HubError(f"{what}: the hub answered HTTP {status} "
                                f"({getattr(exc.response, 'reason_phrase', '') or 'server error'}); "
                                "try again later.", kind="server", status=status)
            if status == 404:
                return HubError(f"{what} was not found on the hub.", kind="not_found", status=status)
            return HubError(f"{what}: the hub refused the request (HTTP {status}).", status=status)
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, ConnectionError)):
            return HubError(f"{what}: could not reach {self.endpoint} ({exc or type(exc).__name__}); "
                            "check your internet connection.", kind="network")
        if isinstance(exc, httpx.TimeoutException):
            return HubError(f"{what}: {self.endpoint} stopped sending data (timed out).", kind="network")
        if isinstance(exc, (httpx.TransportError, httpx.StreamError)):
            return HubError(f"{what}: the connection to {self.endpoint} was lost "
                            f"({exc or type(exc).__name__}).", kind="network")
        return HubError(f"{what}: {exc}", status=status)

    # -- queries ---------------------------------------------------------------------------------
    def search(self, query: str, *, sort: str = "downloads", limit: int = 20) -> list[RepoSummary]:
        """GGUF model repositories matching `query`, best first by `sort` (downloads | likes | recent)."""
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
        self._check_online()
        try:
            found = list(self._api.list_models(search=query or None, filter="gguf", sort=SORTS[sort],
                                               limit=limit))
        except HUB_FAILURES as exc:
            raise self.to_hub_error(exc, f"Searching the hub for {query!r}") from exc
        return [RepoSummary(repo_id=m.id, author=m.author or m.id.partition("/")[0] or None,
                            downloads=m.downloads or 0, likes=m.likes or 0, last_modified=m.last_modified,
                            gated=bool(m.gated), tags=tuple(m.tags or ()))
                for m in found]

    def list_gguf_files(self, repo_id: str, revision: str | None = None) -> list[HubFile]:
        """The .gguf files of a repository with their size and LFS sha256, sorted by name."""
        self._check_online()
        try:
            tree = list(self._api.list_repo_tree(repo_id, recursive=True, revision=revision))
        except HUB_FAILURES as exc:
            raise self.to_hub_error(exc, repo_id) from exc
        files = [HubFile(repo_id, e.path, (e.lfs.size if e.lfs else e.size),
                         (e.lfs.sha256 if e.lfs else None))
                 for e in tree if getattr(e, "size", None) is not None and e.path.lower().endswith(".gguf")]
        return sorted(files, key=lambda f: f.filename)

    def file_url(self, repo_id: str, filename: str, revision: str | None = None) -> str:
        return hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)

    def file_metadata(self, repo_id: str, filename: str, revision: str | None = None) -> FileMetadata:
        """Size, sha256 and commit of a file from a HEAD on its resolve URL (no body is fetched)."""
        self._check_online()
        revision = revision or hf_constants.DEFAULT_REVISION
        try:
            meta = get_hf_file_metadata(self.file_url(repo_id, filename, revision), token=self.token,
                                        timeout=self.timeout, endpoint=self.endpoint)
        except HUB_FAILURES as exc:
            raise self.to_hub_error(exc, f"{repo_id}/{filename}") from exc
        pinned = self.file_url(repo_id, filename, meta.commit_hash or revision)
        return FileMetadata(repo_id, filename, revision, pinned, meta.size, meta.etag,
                            meta.etag.lower() if _is_sha256(meta.etag) else None, meta.commit_hash)

    # -- the header check ------------------------------------------------------------------------
    def read_header(self, repo_id: str, filename: str, revision: str | None = None) -> HeaderCheck:
        """Check, before downloading, that a remote file is a GGUF model this Corral can read.

        Range requests read 1 MiB, then twice as much, until gguf_info can parse the whole
        header (at most 64 MiB), validated against the remote file's size. Raises HubError (hub
        problems) or gguf_info.GGUFError (the header is not a usable model)."""
        from app.core import gguf_info

        meta = self.file_metadata(repo_id, filename, revision)
        what = f"{repo_id}/{filename}"
        data, want = b"", HEADER_FIRST_READ
        while True:
            if len(data) < want:
                data += self._read_range(meta.url, len(data), want, what)
            size = meta.size or len(data)
            try:
                info = gguf_info.inspect_prefix(data, size, what)
            except gguf_info.IncompleteHeader:
                if len(data) >= size or want >= HEADER_MAX_BYTES:
                    raise HubError(f"{what}: no complete GGUF header in its first "
                                   f"{len(data) >> 20} MiB; this is not a model Corral can check.")
                want = min(want * 2, HEADER_MAX_BYTES)
                continue
            return HeaderCheck(repo_id, filename, size, info.data_offset, info)

    def _read_range(self, url: str, start: int, stop: int, what: str) -> bytes:
        with self.stream(url, start=start, end=stop, what=what) as resp:
            if resp.status_code == 416:
                return b""
            skip = start if resp.status_code == 200 else 0  # a server that ignores Range
            out = bytearray()
            for chunk in resp.iter_bytes():
                out += chunk
                if len(out) >= skip + (stop - start):
                    break
            return bytes(out[skip:skip + (stop - start)])

    @contextmanager
    def stream(self, url: str, *, start: int = 0, end: int | None = None,
               read_timeout: float | None = None, what: str = "the file"):
        """GET `url` from byte `start` (to `end`, exclusive) with huggingface_hub's client and auth.

        Yields the streaming response once its status is 2xx or 416 (416: nothing left in that
        range); any other status, and any network failure while the body is read, raises HubError.
        `read_timeout`: seconds without a byte before giving up (stall detection)."""
        _raise_read_size()
        headers = {**self.auth_headers(), "Accept-Encoding": "identity"}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        timeout = httpx.Timeout(self.timeout, read=read_timeout or self.timeout)
        try:
            with self.http_client().stream("GET", url, headers=headers, timeout=timeout) as resp:
                if resp.status_code != 416:
                    self.raise_for_status(resp, what)
                yield resp
        except HUB_FAILURES as exc:
            raise self.to_hub_error(exc, what) from exc


def _raise_read_size() -> None:
    """Let httpcore read response bodies BODY_READ_BYTES at a time (see BODY_READ_BYTES)."""
    for name in ("httpcore2._sync.http11", "httpcore._sync.http11"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        connection = getattr(module, "HTTP11Connection", None)
        if connection is not None and getattr(connection, "READ_NUM_BYTES", 0) < BODY_READ_BYTES:
            connection.READ_NUM_BYTES = BODY_READ_BYTES
