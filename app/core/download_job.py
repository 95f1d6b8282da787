"""Moving one file's bytes from the hub into Corral's own partial file (used by downloads.py).

A partial download is `<models>/.partial/<name>.part` plus a sidecar `<name>.part.json` saying
what it is a prefix of (repo, file, url, size, sha256, etag, commit). Bytes are hashed as they are
written; after a restart the partial is hashed again before it grows. If the hub's ETag for the
file changed, the partial is of another file and starts again from zero.

Everything here runs on the job's worker thread; `stop` (a threading.Event) is checked between
chunks, so pause and cancel take effect within one chunk (or one stall timeout while the server
sends nothing).

A verified partial is put in the models folder with `install()`, which never replaces a file:
when the name is taken (a model imported meanwhile, a file from another repository), the
download takes the next free name, `NAME-2.gguf`, `NAME-3.gguf`… (the library's own way of
telling two models with one name apart).
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from pathlib import Path
from typing import BinaryIO, Callable

from app.core.fileops import place_new
from app.core.hub import FileMetadata, HubClient
from app.core.paths import PARTIAL_DIR
from app.core.retry import Interrupted
from app.core import statefile
from app.core.statefile import write_json_atomic

FILE_BUFFER = 1 << 20   # bytes buffered before a write reaches the OS (no per-chunk fsync)
READ_BLOCK = 4 << 20    # when re-hashing a partial
WRITEBACK_EVERY = 64 << 20  # sync to disk in the background this often (see _Flusher)
DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}

OpenFile = Callable[[Path, str], BinaryIO]
# The sidecar is Corral's own note on a partial: one it cannot read means "start again from zero".
SIDECAR_SCHEMA = statefile.Schema(default=lambda: None, cache=True,
                                  check=lambda value, problems: statefile.expect(value, dict))


def default_open(path: Path, mode: str) -> BinaryIO:
    return open(path, mode, buffering=FILE_BUFFER)


__all__ = ["PARTIAL_DIR", "Interrupted", "TransferFailed", "Transfer", "default_open", "disk_full",
           "file_sha256", "free_name", "STATES"]

# A job's states (see downloads.py): queued → downloading → verifying → done, or paused / failed /
# cancelled.
QUEUED, DOWNLOADING, PAUSED, VERIFYING, DONE, FAILED, CANCELLED = (
    "queued", "downloading", "paused", "verifying", "done", "failed", "cancelled")
STATES = (QUEUED, DOWNLOADING, PAUSED, VERIFYING, DONE, FAILED, CANCELLED)


class TransferFailed(Exception):
    """A transfer problem worth retrying (connection closed early, odd answer from the server)."""


class Transfer:
    """The partial file of one job and the bytes flowing into it."""

    def __init__(self, models_dir: Path, filename: str, *, stop: threading.Event,
                 open_file: OpenFile = default_open,
                 on_bytes: Callable[[int], None] = lambda done: None,
                 on_note: Callable[[str], None] = lambda text: None):
        name = Path(filename).name
        self.folder = Path(models_dir) / PARTIAL_DIR
        self.part = self.folder / f"{name}.part"
        self.sidecar = self.folder / f"{name}.part.json"
        self.stop = stop
        self.open_file = open_file
        self.on_bytes = on_bytes
        self.on_note = on_note
        self.meta: FileMetadata | None = None
        self._hasher = hashlib.sha256()
        self._hashed = 0  # bytes of the partial covered by _hasher

    # -- the partial on disk --------------------------------------------------------------------
    def size_on_disk(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0

    def remove(self) -> None:
        for p in (self.part, self.sidecar):
            p.unlink(missing_ok=True)
        self._hasher, self._hashed = hashlib.sha256(), 0

    def prepare(self, meta: FileMetadata, expected_sha256: str | None) -> int:
        """Make the partial a checked prefix of the file `meta` describes; return its length."""
        self.meta = meta
        sidecar = statefile.load(self.sidecar, SIDECAR_SCHEMA).value
        have = self.size_on_disk()
        if have and (not isinstance(sidecar, dict) or sidecar.get("etag") != meta.etag
                     or sidecar.get("size") != meta.size):
            self.on_note("the file changed on the hub since the download began; starting again")
            self.remove()
            have = 0
        if meta.size is not None and have > meta.size:
            self.remove()
            have = 0
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.sidecar, {
            "repo_id": meta.repo_id, "filename": meta.filename, "revision": meta.revision,
            "url": meta.url, "size": meta.size, "sha256": expected_sha256, "etag": meta.etag,
            "commit": meta.commit})
        if have != self._hashed:
            self._rehash(have)
        return have

    def _rehash(self, length: int) -> None:
        self.on_note("checking the partial download")
        h = hashlib.sha256()
        done = 0
        with open(self.part, "rb") as f:
            while done < length:
                if self.stop.is_set():
                    raise Interrupted()
                block = f.read(min(READ_BLOCK, length - done))
                if not block:
                    break
                h.update(block)
                done += len(block)
        self._hasher, self._hashed = h, done

    # -- the network ----------------------------------------------------------------------------
    def fetch(self, hub: HubClient, *, stall_timeout: float) -> None:
        """One attempt: stream from the end of the partial to the end of the file, then fsync.

        Raises Interrupted, TransferFailed, hub.HubError (from the hub) or OSError (from the disk)."""
        meta = self.meta
        offset = self._hashed
        if meta.size is not None and offset >= meta.size:
            return
        what = f"{meta.repo_id}/{meta.filename}"
        with hub.stream(meta.url, start=offset, read_timeout=stall_timeout, what=what) as resp:
            if resp.status_code == 416:  # the hub's file is not the one we have a prefix of
                self.remove()
                raise TransferFailed(f"the hub refused to resume at byte {offset:,}; starting again")
            skip = 0
            if resp.status_code == 206:
                first = _content_range_start(resp.headers.get("Content-Range"))
                if first != offset:
                    raise TransferFailed(f"the hub resumed at byte {first} instead of {offset:,}")
            elif offset:  # 200: the server ignored Range; drop what we already have
                skip = offset
            with self.open_file(self.part, "ab" if offset else "wb") as out, _Flusher(out) as flusher:
                written_back = self._hashed
                # Raw chunks as they arrive: the request asks for identity encoding, so raw bytes
                # are the file's bytes and the decoder can be skipped. No re-chunking to a fixed
                # size: on a slow link that would hold back progress, pause and stall detection.
                for chunk in resp.iter_raw():
                    if self.stop.is_set():
                        raise Interrupted()
                    if skip:
                        cut = min(skip, len(chunk))
                        chunk, skip = chunk[cut:], skip - cut
                        if not chunk:
                            continue
                    out.write(chunk)
                    self._hasher.update(chunk)
                    self._hashed += len(chunk)
                    self.on_bytes(self._hashed)
                    if self._hashed - written_back >= WRITEBACK_EVERY:
                        flusher.kick()
                        written_back = self._hashed
                    if meta.size is not None and self._hashed > meta.size:
                        break  # more bytes than the hub announced: verification will say so
                if meta.size is not None and self._hashed < meta.size:
                    raise TransferFailed(f"the connection closed at {self._hashed:,} of {meta.size:,} bytes")
                out.flush()
                flusher.wait()
                os.fsync(out.fileno())

    def digest(self) -> str:
        return self._hasher.hexdigest()

    def install(self, folder: Path, name: str) -> Path:
        """Move the verified partial into `folder` as `name`, or as the next free name when a file
        of that name is there (see free_name); never over another file. Returns where it went."""
        for n in range(1, 1000):
            dest = folder / free_name(name, n)
            try:
                place_new(self.part, dest)
            except FileExistsError:
                continue
            self.sidecar.unlink(missing_ok=True)
            _fsync_dir(folder)
            return dest
        raise FileExistsError(errno.EEXIST, "every alternative name is taken", str(folder / name))

    @property
    def bytes_done(self) -> int:
        return self._hashed


class _Flusher:
    """Syncs the file to disk on a helper thread every WRITEBACK_EVERY bytes while the download goes
    on, so the disk works during the transfer and the fsync before the rename has little left
    (measured here: 1.2 s → 0.08 s for 620 MB). Its errors (ENOSPC may only show at sync time)
    are raised on the download thread. The file is never closed while a sync runs."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.thread: threading.Thread | None = None
        self.error: OSError | None = None

    def kick(self) -> None:
        if self.error is not None:
            raise self.error
        if self.thread is not None and self.thread.is_alive():
            return  # still busy with the last batch; the next kick takes this one too
        self.out.flush()
        self.thread = threading.Thread(target=self._sync, args=(self.out.fileno(),), daemon=True,
                                       name="download-sync")
        self.thread.start()

    def _sync(self, fd: int) -> None:
        try:
            (os.fdatasync if hasattr(os, "fdatasync") else os.fsync)(fd)
        except OSError as exc:
            self.error = exc

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
        if self.error is not None:
            raise self.error

    def __enter__(self) -> "_Flusher":
        return self

    def __exit__(self, *exc) -> None:
        if self.thread is not None:
            self.thread.join()


def _content_range_start(value: str | None) -> int | None:
    """The first byte of `Content-Range: bytes a-b/n`."""
    try:
        return int(value.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


def free_name(name: str, n: int) -> str:
    """`name` for n == 1, else `stem-n.gguf` (model.Q4_K_M.gguf → model.Q4_K_M-2.gguf)."""
    if n == 1:
        return name
    stem, dot, ext = name.rpartition(".")
    return f"{stem}-{n}.{ext}" if dot else f"{name}-{n}"


def file_sha256(path: Path, stop: threading.Event) -> str:
    """The sha256 of a whole file, read in blocks; Interrupted when `stop` is set meanwhile."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(READ_BLOCK):
            if stop.is_set():
                raise Interrupted()
            h.update(block)
    return h.hexdigest()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX; Windows has no directory handles to sync)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL
