"""The download queue on disk, shared by every Corral process (used by downloads.DownloadManager).

- `Job` / `DownloadEvent`: one download and what its listeners are told.
- `QueueFile`: `queue.json` and its file lock (the window and `corral models pull` read, merge and
  write it one at a time), read through app.core.statefile with the policy for user data (a file
  that cannot be used is set aside and the queue starts empty, partial downloads kept; entries that
  cannot be used are left out, the original set aside), and the locks beside it that say which
  process writes which partial file (held while a job runs; gone with the process, even on
  SIGKILL). What cannot be read or written is told once in `notices`, never raised at a worker.
- `job_from_saved(raw)`: a saved entry as a Job, its odd field types back to their defaults.
No Qt here.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from filelock import FileLock, Timeout

from app.core import statefile
from app.core.download_job import PAUSED, QUEUED, STATES, Transfer, disk_full
from app.core.hub_listing import BadFileName, local_name
from app.core.statefile import Damaged, Schema, StateFileError, expect, keep_items, write_json_atomic

log = logging.getLogger(__name__)

STATE_VERSION = 1
QUEUE_LOCK_TIMEOUT = 10.0  # s; the queue file is only ever locked for one read-merge-write


@dataclass
class Job:
    id: str
    repo_id: str
    filename: str
    revision: str = "main"
    state: str = QUEUED
    size: int | None = None         # from the catalog at first, then from the hub
    sha256: str | None = None       # expected; from the catalog at first, then the hub's LFS sha256
    bytes_done: int = 0
    message: str = ""               # why it is paused / failed, or what it is doing
    path: str | None = None         # the finished file
    created: float = field(default_factory=time.time)
    check: bool = True              # read the GGUF header on the hub before downloading
    verified: str = ""              # when done: what was checked (a key of download_run.VERIFIED)

    @property
    def name(self) -> str:
        return Path(self.filename).name


@dataclass(frozen=True)
class DownloadEvent:
    job: Job                        # a snapshot
    kind: str                       # "state" or "progress"
    speed: float | None = None      # bytes/s, smoothed
    eta: float | None = None        # seconds

    @property
    def fraction(self) -> float | None:
        return self.job.bytes_done / self.job.size if self.job.size else None


_JOB_FIELDS = frozenset(f.name for f in fields(Job))
# A saved field of another type (a hand-edited or foreign queue file) falls back to its default.
_SAVED_TYPES = {"size": (int, None), "sha256": (str, None), "created": ((int, float), 0.0),
                "revision": (str, "main"), "message": (str, ""), "path": (str, None),
                "bytes_done": (int, 0), "check": (bool, True), "verified": (str, "")}


def job_from_saved(raw: dict) -> Job:
    """A queue entry (id, repo_id and filename are text: see _check_job) as a Job."""
    job = Job(**{k: v for k, v in raw.items() if k in _JOB_FIELDS})
    if job.state not in STATES:  # a state this version does not know: let the user decide
        job.state = PAUSED
    for name, (kinds, default) in _SAVED_TYPES.items():
        value = getattr(job, name)
        if not isinstance(value, kinds) or isinstance(value, bool) != (kinds is bool):
            setattr(job, name, default)
    return job


def _check_job(raw: object) -> dict:
    expect(raw, dict, "the job")
    for key in ("id", "repo_id", "filename"):
        expect(raw.get(key), str, key)
    try:
        local_name(raw["filename"])  # the one rule for hub file names (a NUL, '..', a hidden name)
    except BadFileName as exc:
        raise Damaged(str(exc)) from None
    return raw  # the other fields are normalised by job_from_saved


def _check_queue(value: object, problems: list[str]) -> dict:
    data = expect(value, dict)
    jobs = expect(data.get("jobs", []), list, "jobs")
    return {"version": STATE_VERSION, "jobs": keep_items(jobs, _check_job, problems, "job")}


QUEUE_SCHEMA = Schema(default=lambda: {"version": STATE_VERSION, "jobs": []}, check=_check_queue,
                      then="the queue starts empty; partial downloads are kept (pull a file again to "
                           "resume it)")


class QueueFile:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = FileLock(f"{self.path}.lock", timeout=QUEUE_LOCK_TIMEOUT)
        self.locks_dir = self.path.parent / "locks"  # who writes which partial file
        self.notices: list[str] = []  # problems worth telling the user (e.g. a damaged queue file)
        self._problem: str | None = None  # the last problem told (each is told once)
        self.locks_dir.mkdir(parents=True, exist_ok=True)  # (and the queue's folder with it)

    def tell(self, note: str) -> None:
        if self._problem != note and note not in self.notices:  # once, not once per progress step
            self._problem = note
            log.info(note)  # (told through `notices`: a warning would print it a second time)
            self.notices.append(note)

    def read(self) -> dict[str, dict]:
        """The saved jobs by id; the caller holds `lock`. Raises StateFileError when the file
        cannot be read or set aside: then nothing may be written over it."""
        loaded = statefile.load(self.path, QUEUE_SCHEMA)
        if loaded.notice:
            self.tell(loaded.notice)
        return {j["id"]: j for j in loaded.value["jobs"]}

    def read_or_told(self) -> dict[str, dict]:
        """read() under the lock; {} (and the reason in `notices`) when it cannot be read."""
        with self.lock:
            try:
                return self.read()
            except StateFileError as exc:
                self.tell(str(exc))
                return {}

    def write(self, jobs: list[dict]) -> None:
        """Replace the saved jobs; the caller holds `lock`."""
        write_json_atomic(self.path, {"version": STATE_VERSION, "jobs": jobs})
        self._problem = None

    def could_not_save(self, exc: Exception) -> None:
        if isinstance(exc, StateFileError):
            self.tell(str(exc))
            return
        reason = "the disk is full" if disk_full(exc) else (getattr(exc, "strerror", None) or str(exc))
        self.tell(f"The download queue {self.path} could not be saved ({reason}); the downloads go on, and "
                  "the queue is saved again at the next change.")

    # -- who writes which partial file ----------------------------------------------------------
    def _partial_lock_path(self, transfer: Transfer) -> str:
        """Beside the queue (the models folder stays clean), named after the partial's full path."""
        key = hashlib.sha1(str(transfer.part.resolve()).encode()).hexdigest()[:16]
        return str(self.locks_dir / f"{transfer.part.name}-{key}.lock")

    def claim_partial(self, transfer: Transfer) -> FileLock | None:
        """The lock on `transfer`'s partial file, now held here; None if another process has it."""
        lock = FileLock(self._partial_lock_path(transfer), blocking=False)
        try:
            lock.acquire()
        except Timeout:
            return None
        return lock

    def partial_owned_elsewhere(self, transfer: Transfer) -> bool:
        """Whether another process holds `transfer`'s partial file right now."""
        lock = self.claim_partial(transfer)
        if lock is None:
            return True
        lock.release()
        return False
