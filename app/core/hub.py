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
down, an answer of the wrong shape) becomes one `HubError` whose message says what to do; `kind`
tells which it was and `retryable` whether trying again may help. Every call is bounded in time
(`timeout`: seconds without a byte) and retried after a stall, a dropped connection or a server
error with `app.core.retry` (the same helper the download manager's transfers use; pass your own
`retrying=` to share its count and its messages, or set `on_retry` to hear them).

Search and file lists are read with Corral's own requests and parsed defensively
(`app.core.hub_listing`): huggingface_hub's HfApi waits forever on a stalled answer and raises
on a malformed one. File bytes are fetched from the resolve URL with plain HTTP and Range
(`stream()`), following the hub's redirect to its download host; the HTTP client drops the
Authorization header when a redirect leaves the hub's origin. Xet storage is never used: its
headers are ignored, so hf_xet and HF_HUB_DISABLE_XET make no difference to Corral.
"""

from __future__ import annotations

import importlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, TypeVar
from urllib.parse import quote, urlsplit

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
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status, validate_repo_id

from app.core.hub_listing import (BadFileName, HubFile, RepoSummary, gguf_files, local_name,
                                  repo_summaries)
from app.core.memory_plan import format_bytes
from app.core.retry import GaveUp, RetryPolicy, Retrying

# huggingface_hub 2.x, the first time a process builds its user agent (every request Corral
# makes through it), asks {HF_ENDPOINT}/api/agent-harnesses whether an AI coding agent runs it,
# and keeps the answer under HF_HOME: a request nobody asked for, that waits up to 3 s where the
# hub is slow. Its telemetry switch turns that off (read when the user agent is built).
hf_constants.HF_HUB_DISABLE_TELEMETRY = True

try:  # huggingface_hub 2.x ships its HTTP client as httpx2; 1.x used httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

# What huggingface_hub and its HTTP client raise when the hub cannot give an answer.
HUB_FAILURES = (HfHubHTTPError, EntryNotFoundError, OfflineModeIsEnabled, HFValidationError, httpx.HTTPError,
                httpx.StreamError)

SORTS = {"downloads": "downloads", "likes": "likes", "recent": "lastModified"}
HEADER_FIRST_READ = 1 << 20     # the first Range read; doubled until the header fits
HEADER_MAX_BYTES = 64 << 20     # a GGUF header larger than this is not a model we want
LISTING_MAX_BYTES = 16 << 20    # one page of a search or file-list answer
LISTING_MAX_PAGES = 100         # a GGUF repository has tens of files; the hub pages 1,000 at a time
# What a search asks the hub to include (without `expand` the real hub leaves out author,
# gated and lastModified).
SEARCH_FIELDS = ("author", "downloads", "likes", "lastModified", "gated", "tags")
# httpcore asks the socket for at most 64 KiB per read, and h11 copies every read twice: a fast
# download spent most of its CPU there (620 MB over 127.0.0.1: 260 MB/s with 64 KiB reads, 450 MB/s
# with 512 KiB; 4 MiB was slower again). READ_NUM_BYTES is that ceiling, a class attribute httpcore
# reads on every call; raising it changes nothing for small answers.
BODY_READ_BYTES = 512 << 10
T = TypeVar("T")


class HubError(Exception):
    """A hub failure phrased for a person.

    kind: offline | not_found | gated | server | network | invalid (a name Corral will not use)
    | malformed (an answer of the wrong shape) | other. `gave_up`: retried until the tries ran out."""

    def __init__(self, message: str, *, kind: str = "other", status: int | None = None,
                 gave_up: bool = False):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.gave_up = gave_up

    @property
    def retryable(self) -> bool:
        return self.kind in ("server", "network") and not self.gave_up


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
    file_size: int | None  # None: the hub did not say
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

    def summary(self) -> str:
        """One line: what the model is, as `corral models pull` and the Downloads screen say it."""
        info = self.info
        return (f"{self.repo_id}/{self.filename}: {info.architecture or '?'} {info.parameters_label}, "
                f"{info.quantization}, context {info.context_length or '?'}, "
                f"{'chat template included' if info.chat_template else 'no chat template'}")


def check_file_name(filename: object) -> str:
    """The models-folder name of a hub file; HubError(kind="invalid") naming what is wrong."""
    try:
        return local_name(filename)
    except BadFileName as exc:
        raise HubError(str(exc), kind="invalid") from None


def client_for(settings, *, on_retry: Callable[[str], None] | None = None) -> "HubClient":
    """The hub client every face uses: the token in Corral's settings, their offline switch (or
    HF_HUB_OFFLINE when it is off), and who hears about retries."""
    return HubClient(token=settings.hf_token or None, offline=True if settings.offline else None,
                     on_retry=on_retry)


def _is_sha256(value: str | None) -> bool:
    return bool(value) and len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower())


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


class HubClient:
    def __init__(self, endpoint: str | None = None, token: str | None = None,
                 offline: bool | None = None, timeout: float = 15.0, *,
                 retry: RetryPolicy | None = None, on_retry: Callable[[str], None] | None = None):
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or hf_constants._HF_DEFAULT_ENDPOINT).rstrip("/")
        self.token = token or None  # None: huggingface_hub finds HF_TOKEN or a saved login
        self.offline = _env_true("HF_HUB_OFFLINE") if offline is None else offline
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry  # told "… — retrying in 2 s (attempt 2 of 6)"; None: logged

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

    def retrying(self) -> Retrying:
        """A fresh retry state with this client's policy and listener."""
        return Retrying(self.retry, on_retry=self.on_retry)

    def _with_retries(self, fn: Callable[[], T], retrying: Retrying | None) -> T:
        """fn() under `retrying` (a fresh one if None); the last HubError when the tries run out."""
        try:
            return (retrying or self.retrying()).call(fn)
        except GaveUp as exc:
            last = exc.last
            raise HubError(str(exc), kind=getattr(last, "kind", "network"),
                           status=getattr(last, "status", None), gave_up=True) from last

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
        if isinstance(exc, HFValidationError):
            return HubError(f"{what}: {exc}", kind="invalid", status=status)
        return HubError(f"{what}: {exc}", status=status)

    # -- queries ---------------------------------------------------------------------------------
    def search(self, query: str, *, sort: str = "downloads", limit: int = 20,
               retrying: Retrying | None = None) -> list[RepoSummary]:
        """GGUF model repositories matching `query`, best first by `sort` (downloads | likes | recent)."""
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
        self._check_online()
        params = [("filter", "gguf"), ("sort", SORTS[sort]), ("limit", str(limit)),
                  *(("expand", f) for f in SEARCH_FIELDS)]
        if query:
            params.insert(0, ("search", query))
        data, _ = self._get_json(f"{self.endpoint}/api/models", params,
                                 f"Searching the hub for {query!r}", retrying)
        try:
            return repo_summaries(data)[:limit]
        except ValueError as exc:
            raise HubError(f"Searching the hub for {query!r}: the hub's answer could not be read ({exc})",
                           kind="malformed") from None

    def list_gguf_files(self, repo_id: str, revision: str | None = None,
                        retrying: Retrying | None = None) -> list[HubFile]:
        """The .gguf files of a repository with their size and LFS sha256, sorted by name. Entries
        of the wrong shape, and names Corral would not download, are left out."""
        self._check_online()
        self._check_repo_id(repo_id)
        revision = revision or hf_constants.DEFAULT_REVISION
        url: str | None = (f"{self.endpoint}/api/models/{repo_id}/tree/{quote(revision, safe='')}"
                           "?recursive=true")
        files: list[HubFile] = []
        for _ in range(LISTING_MAX_PAGES):
            if url is None:
                break
            data, url = self._get_json(url, None, repo_id, retrying)
            try:
                files += gguf_files(repo_id, data)
            except ValueError as exc:
                raise HubError(f"{repo_id}: the hub's file list could not be read ({exc})",
                               kind="malformed") from None
        return sorted(files, key=lambda f: f.filename)

    def _check_repo_id(self, repo_id: str) -> None:
        try:
            validate_repo_id(repo_id)
        except HFValidationError as exc:
            raise HubError(f"{repo_id!r} is not a hub repository id: {exc}", kind="invalid") from None

    def _get_json(self, url: str, params, what: str, retrying: Retrying | None) -> tuple[object, str | None]:
        """(the JSON of one GET, the next page's URL or None), retried; bounded in size and depth."""
        def once():
            body = bytearray()
            with self.stream(url, params=params, what=what) as resp:
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > LISTING_MAX_BYTES:
                        raise HubError(f"{what}: the hub's answer is larger than "
                                       f"{format_bytes(LISTING_MAX_BYTES)}; it was not read.", kind="malformed")
                nxt = resp.links.get("next", {}).get("url")
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):
                raise HubError(f"{what}: the hub's answer is not valid JSON.", kind="malformed") from None
            if nxt is not None and urlsplit(nxt)[:2] != urlsplit(self.endpoint)[:2]:
                # the token is sent with every page: never to another host
                raise HubError(f"{what}: the hub's next page is on another host ({urlsplit(nxt).netloc}).",
                               kind="malformed")
            return data, nxt
        return self._with_retries(once, retrying)

    def file_url(self, repo_id: str, filename: str, revision: str | None = None) -> str:
        return hf_hub_url(repo_id, filename, revision=revision, endpoint=self.endpoint)

    def file_metadata(self, repo_id: str, filename: str, revision: str | None = None,
                      retrying: Retrying | None = None) -> FileMetadata:
        """Size, sha256 and commit of a file from a HEAD on its resolve URL (no body is fetched).
        A redirect to another host (the hub's download host) is not followed: the hub puts the
        file's size and sha256 on the redirect itself."""
        self._check_online()
        check_file_name(filename)
        revision = revision or hf_constants.DEFAULT_REVISION
        what = f"{repo_id}/{filename}"

        def once():
            try:
                return get_hf_file_metadata(self.file_url(repo_id, filename, revision), token=self.token,
                                            timeout=self.timeout, endpoint=self.endpoint)
            except HUB_FAILURES as exc:
                raise self.to_hub_error(exc, what) from exc
        meta = self._with_retries(once, retrying)
        pinned = self.file_url(repo_id, filename, meta.commit_hash or revision)
        etag = meta.etag if isinstance(meta.etag, str) else None
        size = meta.size if isinstance(meta.size, int) and meta.size >= 0 else None
        return FileMetadata(repo_id, filename, revision, pinned, size, etag,
                            etag.lower() if _is_sha256(etag) else None, meta.commit_hash)

    # -- the header check ------------------------------------------------------------------------
    def read_header(self, repo_id: str, filename: str, revision: str | None = None, *,
                    meta: FileMetadata | None = None, retrying: Retrying | None = None) -> HeaderCheck:
        """Check, before downloading, that a remote file is a GGUF model this Corral can read.

        Range requests read 1 MiB, then twice as much, until gguf_info can parse the whole
        header (at most 64 MiB), validated against the remote file's size. Each read is retried
        like any hub call. Raises HubError (hub problems) or gguf_info.GGUFError (the header is
        not a usable model)."""
        from app.core import gguf_info

        retrying = retrying or self.retrying()
        meta = meta or self.file_metadata(repo_id, filename, revision, retrying=retrying)
        what = f"{repo_id}/{filename}"
        data, want, total, ended = b"", HEADER_FIRST_READ, meta.size, False
        while True:
            if len(data) < want and not ended:
                start = len(data)
                more, seen = self._with_retries(lambda: self._read_range(meta.url, start, want, what), retrying)
                data += more
                total = total if total is not None else seen
                ended = len(more) < want - start
            # Without the file's size (a hub that did not say) the tensor data cannot be checked
            # against it here; the finished download is checked whole (see downloads.py).
            size = total if total is not None else (len(data) if ended else 1 << 62)
            try:
                info = gguf_info.inspect_prefix(data, size, what)
            except gguf_info.IncompleteHeader:
                if ended or len(data) >= size or want >= HEADER_MAX_BYTES:
                    raise HubError(f"{what}: no complete GGUF header in its first "
                                   f"{format_bytes(len(data))}; this is not a model Corral can check.",
                                   kind="malformed")
                want = min(want * 2, HEADER_MAX_BYTES)
                continue
            return HeaderCheck(repo_id, filename, total, info.data_offset, info)

    def _read_range(self, url: str, start: int, stop: int, what: str) -> tuple[bytes, int | None]:
        """Bytes [start, stop) of the file (fewer at its end) and its whole size if the answer says."""
        with self.stream(url, start=start, end=stop, what=what) as resp:
            if resp.status_code == 416:
                return b"", None
            total = _total_size(resp)
            skip = start if resp.status_code == 200 else 0  # a server that ignores Range
            out = bytearray()
            for chunk in resp.iter_bytes():
                out += chunk
                if len(out) >= skip + (stop - start):
                    break
            return bytes(out[skip:skip + (stop - start)]), total

    @contextmanager
    def stream(self, url: str, *, start: int = 0, end: int | None = None, params=None,
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
            with self.http_client().stream("GET", url, params=params, headers=headers,
                                           timeout=timeout) as resp:
                if resp.status_code != 416:
                    self.raise_for_status(resp, what)
                yield resp
        except HUB_FAILURES as exc:
            raise self.to_hub_error(exc, what) from exc


def _total_size(resp) -> int | None:
    """The whole file's size from `Content-Range: bytes a-b/n` (206) or Content-Length (200)."""
    if resp.status_code == 206:
        value = (resp.headers.get("Content-Range") or "").rpartition("/")[2]
    else:
        value = resp.headers.get("Content-Length") or ""
    return int(value) if value.isdigit() else None


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
