"""The download manager: a persisted queue of model downloads, 1–N at a time, resumable, verified.

    manager = DownloadManager(models_dir, state_file, HubClient(), on_event=..., on_complete=...)
    job = manager.enqueue("TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF", "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf")
    manager.start()
    manager.wait(job.id)

States: queued → downloading → verifying → done, or paused / failed / cancelled. The queue is saved
(atomically) in `state_file` at every change of state. Bytes go to Corral's own partial file in
`<models>/.partial/` (see download_job.py) and are resumed with HTTP Range: after pause(), after
a dropped or stalled connection (retried with exponential back-off, `max_attempts` in a row
without progress), and after the process is killed (jobs found "downloading" at start are queued
again and continue from the partial). Before a job starts, the free disk space is checked; a
full disk while writing pauses the job and keeps the partial. The finished file's size and sha256
are checked against the hub's LFS metadata, and only then is it renamed into the models folder
and `on_complete(path, job)` called; a mismatch fails the job and removes the bad file.

Processes: the window and `corral models pull` may share one queue file at once. It is read,
merged and written under a file lock, each manager writing back only the jobs it changed;
`refresh()` takes in what the others did. A partial file has one writer, the process holding
its lock: a job another process is running shows as downloading there and is left alone here,
and is continued here once that process is gone (its lock goes with it, even on SIGKILL).

Threads: each running job has its own worker thread. `on_event(DownloadEvent)` and `on_complete`
are called ON THOSE WORKER THREADS (and on the caller's thread for enqueue/pause/resume/cancel),
never with the manager's lock held: a GUI must hand them to its own thread (a queued signal).
No Qt here.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from app.core.download_job import (PARTIAL_DIR, Interrupted, OpenFile, Transfer, TransferFailed,
                                   default_open, disk_full)
from app.core.hub import HubClient, HubError
from app.core.memory_plan import format_bytes
from app.core.settings import SettingsError, read_json, write_json_atomic

log = logging.getLogger(__name__)

QUEUED, DOWNLOADING, PAUSED, VERIFYING, DONE, FAILED, CANCELLED = (
    "queued", "downloading", "paused", "verifying", "done", "failed", "cancelled")
STATES = (QUEUED, DOWNLOADING, PAUSED, VERIFYING, DONE, FAILED, CANCELLED)
ACTIVE = frozenset({DOWNLOADING, VERIFYING})
FINISHED = frozenset({DONE, FAILED, CANCELLED})
STATE_VERSION = 1
QUEUE_LOCK_TIMEOUT = 10.0  # s; the queue file is only ever locked for one read-merge-write


class DownloadError(Exception):
    """A download request that cannot be made (the message says why)."""


class AlreadyDownloaded(DownloadError):
    def __init__(self, path: Path):
        super().__init__(f"{path.name} is already in the models folder ({path})")
        self.path = path


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

    @property
    def name(self) -> str:
        return Path(self.filename).name


_JOB_FIELDS = frozenset(f.name for f in fields(Job))
# A saved field of another type (a hand-edited or foreign queue file) falls back to its default.
_SAVED_TYPES = {"size": (int, None), "sha256": (str, None), "created": ((int, float), 0.0),
                "revision": (str, "main"), "message": (str, ""), "path": (str, None),
                "bytes_done": (int, 0)}


@dataclass(frozen=True)
class DownloadEvent:
    job: Job                        # a snapshot
    kind: str                       # "state" or "progress"
    speed: float | None = None      # bytes/s, smoothed
    eta: float | None = None        # seconds

    @property
    def fraction(self) -> float | None:
        return self.job.bytes_done / self.job.size if self.job.size else None


class _Worker:
    def __init__(self, job_id: str):
        self.job_id = job_id
        self.stop = threading.Event()
        self.reason = ""            # "pause", "cancel" or "shutdown"
        self.thread: threading.Thread | None = None
        self.speed: float | None = None
        self.last: tuple[float, int] | None = None  # (time, bytes) of the last progress event


def disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


class DownloadManager:
    def __init__(self, models_dir: str | os.PathLike, state_file: str | os.PathLike, hub: HubClient, *,
                 max_parallel: int = 1, on_event: Callable[[DownloadEvent], None] | None = None,
                 on_complete: Callable[[Path, Job], None] | None = None,
                 stall_timeout: float = 30.0, max_attempts: int = 6, backoff: float = 2.0,
                 backoff_max: float = 60.0, progress_interval: float = 0.25,
                 free_space: Callable[[Path], int] = disk_free, open_file: OpenFile = default_open):
        self.models_dir = Path(models_dir)
        self.state_file = Path(state_file)
        self.hub = hub
        self.max_parallel = max(1, max_parallel)
        self.on_event = on_event
        self.on_complete = on_complete
        self.stall_timeout = stall_timeout
        self.max_attempts = max_attempts
        self.backoff, self.backoff_max = backoff, backoff_max
        self.progress_interval = progress_interval
        self.free_space = free_space
        self.open_file = open_file
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._jobs: dict[str, Job] = {}
        self._workers: dict[str, _Worker] = {}
        self._running = False
        self._only: set[str] | None = None
        # The window and `corral models pull` may run at once on the same queue file: each
        # manager writes back only the jobs it changed (see _save), under this lock.
        self._queue_lock = FileLock(f"{self.state_file}.lock", timeout=QUEUE_LOCK_TIMEOUT)
        self._locks_dir = self.state_file.parent / "locks"  # who writes which partial file
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        self.notices: list[str] = []  # problems worth telling the user (e.g. a damaged queue file)
        self._load()

    # -- persistence --------------------------------------------------------------------------------
    def _load(self) -> None:
        self._locks_dir.mkdir(parents=True, exist_ok=True)  # (and the queue's folder with it)
        with self._queue_lock:
            saved = list(self._jobs_on_disk().values())
        for raw in saved:
            job = self._job_from_disk(raw)
            self._jobs[job.id] = job

    def _job_from_disk(self, raw: dict) -> Job:
        """A saved job as this process should see it: one saved as running whose partial nobody
        holds is queued again (the process running it died), and bytes_done is the partial's size."""
        job = Job(**{k: v for k, v in raw.items() if k in _JOB_FIELDS})
        if job.state not in STATES:  # a state this version does not know: let the user decide
            job.state = PAUSED
        for name, (kinds, default) in _SAVED_TYPES.items():
            value = getattr(job, name)
            if not isinstance(value, kinds) or isinstance(value, bool):
                setattr(job, name, default)
        if job.state in ACTIVE and not self._partial_owned_elsewhere(job):
            job.state, job.message = QUEUED, ""
        elif job.state in ACTIVE:
            job.message = "downloading in another Corral process"
        if job.state not in FINISHED:
            job.bytes_done = self._transfer(job).size_on_disk()
        return job

    def refresh(self) -> tuple[list[Job], list[str]]:
        """Take in what other Corral processes did to the shared queue since this one last looked
        (the window calls this every second or so while a terminal may be pulling): jobs they
        added, moved on or removed. Jobs this manager runs, or has unsaved changes to, stay as
        they are. Returns (snapshots of the jobs that changed, ids of the jobs now gone); nothing
        if the queue file is locked this instant (the next call sees it)."""
        try:
            with self._queue_lock.acquire(timeout=0):
                on_disk = self._jobs_on_disk()
        except Timeout:
            return [], []
        changed: list[Job] = []
        with self._lock:
            mine = self._workers.keys() | self._dirty | self._removed
            for job_id, raw in on_disk.items():
                if job_id in mine:
                    continue
                job = self._job_from_disk(raw)
                if job != self._jobs.get(job_id):
                    self._jobs[job_id] = job
                    changed.append(replace(job))
            gone = [i for i in self._jobs if i not in on_disk and i not in mine]
            for job_id in gone:
                del self._jobs[job_id]
            if changed:
                self._changed.notify_all()
        if any(j.state == QUEUED for j in changed):
            self._schedule()  # an orphan of a process that died: this one continues it
        return changed, gone

    def _jobs_on_disk(self) -> dict[str, dict]:
        """The queue file's jobs by id (the caller holds the queue lock). A file that is not JSON
        (cut short, overwritten by something else) is set aside, named in `notices`, and the
        queue starts empty: the partial files stay, and pulling a file again resumes it."""
        try:
            data = read_json(self.state_file, default=None)
        except SettingsError as exc:
            aside = self.state_file.with_name(f"{self.state_file.name}.damaged-{int(time.time())}")
            try:
                os.replace(self.state_file, aside)
            except OSError:
                aside = None
            note = f"The download queue could not be read ({exc})" + (
                f"; it was kept as {aside} and the queue starts empty." if aside else ".")
            log.warning(note)
            self.notices.append(note)
            data = None
        jobs = data.get("jobs", []) if isinstance(data, dict) else []
        # An entry this version cannot read (hand-edited, from another version) is skipped, not
        # fatal: the window must start, and the other jobs must still be there.
        return {j["id"]: j for j in jobs if isinstance(j, dict)
                and all(isinstance(j.get(k), str) for k in ("id", "repo_id", "filename"))}

    def _save(self) -> None:
        """Write the jobs this manager added, changed or removed over the queue file as it is now,
        so a job another process added or moved on meanwhile is kept as that process left it."""
        with self._lock:
            with self._queue_lock:
                merged = self._jobs_on_disk()
                for job_id in self._removed:
                    merged.pop(job_id, None)
                for job_id in self._dirty:
                    if job_id in self._jobs:
                        merged[job_id] = asdict(self._jobs[job_id])
                write_json_atomic(self.state_file, {"version": STATE_VERSION, "jobs": list(merged.values())})
            self._dirty.clear()
            self._removed.clear()

    # -- queries ----------------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        with self._lock:
            return [replace(j) for j in self._jobs.values()]

    def get(self, job_id: str) -> Job:
        with self._lock:
            if job_id not in self._jobs:
                raise DownloadError(f"no download with id {job_id}")
            return replace(self._jobs[job_id])

    def find(self, repo_id: str, filename: str) -> Job | None:
        """The newest job for this file that is not cancelled."""
        with self._lock:
            found = [j for j in self._jobs.values()
                     if (j.repo_id, j.filename) == (repo_id, filename) and j.state != CANCELLED]
            return replace(max(found, key=lambda j: j.created)) if found else None

    def wait(self, job_id: str, states=FINISHED | {PAUSED}, timeout: float | None = None) -> Job:
        """Block until the job is in one of `states`; returns it (raises TimeoutError)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._jobs[job_id].state not in states:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"download {job_id} is still {self._jobs[job_id].state}")
                self._changed.wait(left)
            return replace(self._jobs[job_id])

    # -- commands ---------------------------------------------------------------------------------
    def enqueue(self, repo_id: str, filename: str, *, revision: str = "main", size: int | None = None,
                sha256: str | None = None) -> Job:
        """Queue a file (or return the existing unfinished job for it, resumed if paused)."""
        dest = self.models_dir / Path(filename).name
        existing = self.find(repo_id, filename)
        if existing and existing.state != DONE:
            self.resume(existing.id)  # a paused or failed one; nothing happens to the others
            return self.get(existing.id)
        if dest.exists():
            raise AlreadyDownloaded(dest)
        with self._lock:
            clash = next((j for j in self._jobs.values()
                          if j.name == dest.name and j.state not in FINISHED), None)
        if clash is not None:
            raise DownloadError(f"{clash.repo_id} is already downloading a file named {dest.name}; "
                                "wait for it, or cancel it first")
        job = Job(id=uuid.uuid4().hex[:12], repo_id=repo_id, filename=filename, revision=revision,
                  size=size, sha256=sha256.lower() if sha256 else None)
        with self._lock:
            self._jobs[job.id] = job
        self._set(job.id, QUEUED, "")
        self._schedule()
        return self.get(job.id)

    def pause(self, job_id: str) -> None:
        self._stop_or_set(job_id, "pause", PAUSED, "paused")

    def cancel(self, job_id: str) -> None:
        self._stop_or_set(job_id, "cancel", CANCELLED, "cancelled")

    def _stop_or_set(self, job_id: str, reason: str, state: str, message: str) -> None:
        with self._lock:
            job = self._jobs[job_id]
            worker = self._workers.get(job_id)
            if worker is not None:
                worker.reason = reason
                worker.stop.set()  # the worker sets the state once it has stopped
                return
            if job.state == DONE or job.state == CANCELLED or (job.state == FAILED and state == PAUSED):
                return
            snapshot = self._update(job_id, state, message)
        if state == CANCELLED:
            self._transfer(job).remove()
        self._emit(DownloadEvent(snapshot, "state"))

    def resume(self, job_id: str) -> None:
        """Queue a paused or failed job again (it continues from its partial file)."""
        with self._lock:
            if self._jobs[job_id].state not in (PAUSED, FAILED):
                return
            snapshot = self._update(job_id, QUEUED, "")
        self._emit(DownloadEvent(snapshot, "state"))
        self._schedule()

    def remove(self, job_id: str) -> None:
        """Forget a finished job (done, failed or cancelled); a failed job's partial is removed."""
        with self._lock:
            job = self._jobs[job_id]
            if job.state not in FINISHED:
                raise DownloadError(f"{job.name} is {job.state}: cancel it first")
            del self._jobs[job_id]
            self._removed.add(job_id)
            self._save()
        if job.state == FAILED:
            self._transfer(job).remove()

    def start(self, job_ids: list[str] | None = None) -> None:
        """Begin running queued jobs (only `job_ids` if given, e.g. for one CLI pull)."""
        with self._lock:
            self._running = True
            self._only = set(job_ids) if job_ids is not None else None
        self._schedule()

    def shutdown(self, timeout: float | None = 30) -> None:
        """Stop all workers; running jobs stay queued (in the saved state) and resume next start."""
        with self._lock:
            self._running = False
            workers = list(self._workers.values())
            for w in workers:
                w.reason = w.reason or "shutdown"
                w.stop.set()
        for w in workers:
            w.thread.join(timeout)

    # -- scheduling ---------------------------------------------------------------------------------
    def _schedule(self) -> None:
        with self._lock:
            if not self._running:
                return
            for job in sorted(self._jobs.values(), key=lambda j: j.created):
                if len(self._workers) >= self.max_parallel:
                    break
                if job.state != QUEUED or job.id in self._workers:
                    continue
                if self._only is not None and job.id not in self._only:
                    continue
                worker = _Worker(job.id)
                worker.thread = threading.Thread(target=self._run, args=(worker,), daemon=True,
                                                 name=f"download-{job.name}")
                self._workers[job.id] = worker
                job.state = DOWNLOADING
                worker.thread.start()

    def _set(self, job_id: str, state: str, message: str, **changes) -> None:
        self._emit(DownloadEvent(self._update(job_id, state, message, **changes), "state"))

    def _update(self, job_id: str, state: str, message: str, **changes) -> Job:
        """Change a job, save the queue, wake wait(); returns a snapshot (emit it without the lock)."""
        with self._changed:
            job = self._jobs[job_id]
            job.state, job.message = state, message
            for k, v in changes.items():
                setattr(job, k, v)
            self._dirty.add(job_id)
            self._save()
            self._changed.notify_all()
            return replace(job)

    def _transfer(self, job: Job, worker: _Worker | None = None) -> Transfer:
        if worker is None:
            return Transfer(self.models_dir, job.filename, stop=threading.Event())
        return Transfer(self.models_dir, job.filename, stop=worker.stop, open_file=self.open_file,
                        on_bytes=lambda done: self._progress(worker, done),
                        on_note=lambda text: self._set(job.id, DOWNLOADING, text))

    def _partial_lock_path(self, transfer: Transfer) -> str:
        """Where the lock that says which process writes `transfer`'s partial file lives: beside
        the queue (the models folder stays clean), named after the partial's full path."""
        key = hashlib.sha1(str(transfer.part.resolve()).encode()).hexdigest()[:16]
        return str(self._locks_dir / f"{transfer.part.name}-{key}.lock")

    def _emit(self, event: DownloadEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a broken listener must not kill the download
            log.exception("download event listener failed")

    # -- the worker ---------------------------------------------------------------------------------
    def _run(self, worker: _Worker) -> None:
        job_id = worker.job_id
        job = self.get(job_id)
        transfer = self._transfer(job, worker)
        # Only one process writes a partial file: a second Corral (the window and a `corral
        # models pull`) asking for the same file waits, paused, instead of interleaving bytes.
        # The lock is held until the job's final state is saved, so a process that finds it free
        # while the queue file says "downloading" knows the downloader died (see refresh()).
        owner = self._claim_partial(transfer)
        snapshot: Job | None = None
        try:
            final = self._outcome(worker, job, transfer, owned=owner is not None)
            state, message, *extra = final
            # (a file another process finished was never transferred here: its size is the job's)
            done = (transfer.bytes_done or job.size or 0) if state == DONE else transfer.size_on_disk()
            with self._lock:
                del self._workers[job_id]
                snapshot = self._update(job_id, state, message, bytes_done=done,
                                        **(extra[0] if extra else {}))
        finally:
            if owner is not None:
                if snapshot is not None and snapshot.state in (DONE, CANCELLED):  # no partial left
                    with contextlib.suppress(OSError):  # (Windows: removed on release anyway)
                        os.unlink(owner.lock_file)
                owner.release()
        self._emit(DownloadEvent(snapshot, "state"))
        self._schedule()

    def _claim_partial(self, transfer: Transfer) -> FileLock | None:
        """The lock on `transfer`'s partial file, now held here; None if another process has it."""
        lock = FileLock(self._partial_lock_path(transfer), blocking=False)
        try:
            lock.acquire()
        except Timeout:
            return None
        return lock

    def _partial_owned_elsewhere(self, job: Job) -> bool:
        """Whether another process holds `job`'s partial file right now (see _run)."""
        lock = self._claim_partial(self._transfer(job))
        if lock is None:
            return True
        lock.release()
        return False

    def _outcome(self, worker: _Worker, job: Job, transfer: Transfer, *, owned: bool) -> tuple:
        """Run the job; its final (state, message[, changes])."""
        dest = self.models_dir / job.name
        try:
            if not owned:
                return (PAUSED, f"Another Corral process (the window or `corral models pull`) is "
                                f"downloading {job.name} right now; resume it here once it is done.")
            if dest.exists() and job.size is not None and dest.stat().st_size == job.size:
                return (DONE, "finished by another Corral process", {"path": str(dest)})
            self._set(job.id, DOWNLOADING, "")
            return self._attempts(worker, transfer)
        except Interrupted:
            if worker.reason == "cancel":
                transfer.remove()
            return {"pause": (PAUSED, "paused"), "cancel": (CANCELLED, "cancelled")}.get(
                worker.reason, (QUEUED, ""))
        except Exception as exc:  # a bug: report it on the job rather than losing the thread
            log.exception("download %s crashed", job.id)
            return (FAILED, f"Download failed: {exc}")

    def _attempts(self, worker: _Worker, transfer: Transfer) -> tuple:
        job = self.get(worker.job_id)
        what = f"{job.repo_id}/{job.filename}"
        failures = 0
        while True:
            before = transfer.bytes_done
            try:
                meta = self.hub.file_metadata(job.repo_id, job.filename, job.revision)
                expected = meta.sha256 or job.sha256
                size = meta.size if meta.size is not None else job.size
                self._set(job.id, DOWNLOADING, "", size=size, sha256=expected)
                offset = transfer.prepare(meta, expected)
                if size is not None:
                    need, free = size - offset, self.free_space(self.models_dir)
                    if need > free:
                        return (FAILED, f"Not enough disk space for {job.name}: needs {format_bytes(need)}, "
                                        f"{format_bytes(free)} free on {self.models_dir}.")
                transfer.fetch(self.hub, stall_timeout=self.stall_timeout)
                return self._verify(job, transfer, size, expected)
            except HubError as exc:
                if not exc.retryable:
                    return (FAILED, str(exc))
                problem = str(exc)
            except TransferFailed as exc:
                problem = f"{what}: {exc}"
            except OSError as exc:
                if disk_full(exc):
                    return (PAUSED, f"The disk is full ({self.models_dir}): free some space, then resume. "
                                    f"The partial download ({format_bytes(transfer.size_on_disk())}) is kept.")
                return (FAILED, f"Could not write {transfer.part}: {exc.strerror or exc}")
            failures = 1 if transfer.bytes_done > before else failures + 1
            if failures >= self.max_attempts:
                return (FAILED, f"Download failed after {failures} attempts: {problem}")
            delay = min(self.backoff_max, self.backoff * 2 ** (failures - 1))
            self._set(job.id, DOWNLOADING, f"{problem} — retrying in {delay:.2g} s "
                                           f"(attempt {failures + 1} of {self.max_attempts})")
            if worker.stop.wait(delay):
                raise Interrupted()

    def _verify(self, job: Job, transfer: Transfer, size: int | None, expected: str | None) -> tuple:
        self._set(job.id, VERIFYING, "checking size and sha256")
        got_size, digest = transfer.size_on_disk(), transfer.digest()
        problem = None
        if size is not None and got_size != size:
            problem = f"it has {got_size:,} bytes but the hub says {size:,}"
        elif expected and digest != expected:
            problem = f"its sha256 is {digest} but the hub says {expected}"
        if problem:
            transfer.remove()
            return (FAILED, f"{job.name} failed verification: {problem}. The damaged download was removed; "
                            "try again.")
        dest = self.models_dir / job.name
        os.replace(transfer.part, dest)
        transfer.sidecar.unlink(missing_ok=True)
        _fsync_dir(self.models_dir)
        message = "" if expected else "size checked (the hub gave no sha256 for this file)"
        if self.on_complete is not None:
            try:
                self.on_complete(dest, replace(self.get(job.id), path=str(dest), state=DONE))
            except Exception as exc:
                log.exception("registering %s failed", dest)
                message = f"downloaded, but adding it to the library failed: {exc}"
        return (DONE, message, {"path": str(dest)})

    def _progress(self, worker: _Worker, done: int) -> None:
        now = time.monotonic()
        if worker.last is None:
            worker.last = (now, done)
            return
        last_t, last_done = worker.last
        if now - last_t < self.progress_interval:
            return
        rate = (done - last_done) / (now - last_t)
        worker.speed = rate if worker.speed is None else 0.3 * rate + 0.7 * worker.speed
        worker.last = (now, done)
        with self._lock:
            job = self._jobs[worker.job_id]
            job.bytes_done = done
            snapshot = replace(job)
        eta = (snapshot.size - done) / worker.speed if snapshot.size and worker.speed else None
        self._emit(DownloadEvent(snapshot, "progress", worker.speed, eta))


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["DownloadManager", "DownloadEvent", "DownloadError", "AlreadyDownloaded", "Job", "STATES",
           "QUEUED", "DOWNLOADING", "PAUSED", "VERIFYING", "DONE", "FAILED", "CANCELLED", "PARTIAL_DIR"]
