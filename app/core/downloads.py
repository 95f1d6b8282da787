"""The download manager: a persisted queue of model downloads, 1–N at a time, resumable, verified.

    manager = DownloadManager(models_dir, state_file, HubClient(), on_event=..., on_complete=...)
    job = manager.enqueue("TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF", "tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf")
    manager.start()
    manager.wait(job.id)

States: queued → downloading → verifying → done, or paused / failed / cancelled. The queue is saved
(atomically) in `state_file` at every change of state. A job is run by download_run.JobRun: the
file's GGUF header is checked on the hub first (`check_headers`, or `check=` per job), bytes go
to Corral's own partial file in `<models>/.partial/` (see download_job.py) and are resumed with
HTTP Range: after pause(), after a dropped or stalled connection (every hub call of a job is
retried with app.core.retry, `max_attempts` failures in a row without progress), and after the
process is killed (jobs found "downloading" at start are queued again and continue from the
partial). Before a job starts, the free disk space is checked; a full disk while writing pauses
the job and keeps the partial. The finished file's size and sha256 are checked against the hub's
LFS metadata (`Job.verified` says what could be checked), and only then is it put in the models
folder, never over another file, and `on_complete(path, job)` called; a mismatch fails the job
and removes the bad file. A queue that cannot be saved (a full disk) is told in `notices` and
saved again at the next change; the jobs go on.

File names are checked before anything is queued (hub.check_file_name): what is downloaded is a
.gguf file the library can list and delete. `enqueue` says AlreadyDownloaded only for a file this
queue downloaded from the same repository; any other file of that name is looked at by the job.

Processes: the window and `corral models pull` may share one queue file at once. It is read,
merged and written under a file lock, each manager writing back only the jobs it changed;
`refresh()` takes in what the others did, and a finished ("done") job is never written back as
anything else. A partial file has one writer, the process holding its lock: a job another
process is running shows as downloading there and is left alone here (pause and cancel say to
do it there), `wait()` follows it to its end, and it is continued here once that process is
gone (its lock goes with it, even on SIGKILL).

Threads: each running job has its own worker thread. `on_event(DownloadEvent)` and `on_complete`
are called ON THOSE WORKER THREADS (and on the caller's thread for enqueue/pause/resume/cancel),
never with the manager's lock held: a GUI must hand them to its own thread (a queued signal).
No Qt here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from app.core.download_job import (CANCELLED, DONE, DOWNLOADING, FAILED, PARTIAL_DIR, PAUSED, QUEUED,
                                   STATES, VERIFYING, OpenFile, Transfer, default_open)
from app.core.download_queue import DownloadEvent, Job, QueueFile, job_from_saved
from app.core.download_run import ELSEWHERE, VERIFIED, JobRun
from app.core.hub import HubClient, HubError, check_file_name
from app.core.retry import RetryPolicy
from app.core.statefile import StateFileError

log = logging.getLogger(__name__)

ACTIVE = frozenset({DOWNLOADING, VERIFYING})
FINISHED = frozenset({DONE, FAILED, CANCELLED})
FOLLOW_INTERVAL = 0.5      # s between looks at the queue while waiting for another process's job


class DownloadError(Exception):
    """A download request that cannot be made (the message says why)."""


class AlreadyDownloaded(DownloadError):
    def __init__(self, path: Path):
        super().__init__(f"{path.name} is already in the models folder ({path})")
        self.path = path


def verified_text(job: Job) -> str:
    """What was checked of a finished download, in words ("size and sha256 verified", …)."""
    return VERIFIED.get(job.verified, "")


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
                 backoff_max: float = 60.0, progress_interval: float = 0.25, check_headers: bool = True,
                 free_space: Callable[[Path], int] = disk_free, open_file: OpenFile = default_open):
        self.models_dir = Path(models_dir)
        self.state_file = Path(state_file)
        self.hub = hub
        self.max_parallel = max(1, max_parallel)
        self.on_event = on_event
        self.on_complete = on_complete
        self.stall_timeout = stall_timeout
        self.retry_policy = RetryPolicy(max(1, max_attempts), backoff, backoff_max)
        self.check_headers = check_headers
        self.progress_interval = progress_interval
        self.free_space = free_space
        self.open_file = open_file
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        # Jobs whose final state is set but not yet told to on_event: wait() holds them back, so
        # whoever waits for a job sees its last event before wait() returns.
        self._telling: set[str] = set()
        self._jobs: dict[str, Job] = {}
        self._workers: dict[str, _Worker] = {}
        self._running = False
        self._only: set[str] | None = None
        # The window and `corral models pull` may run at once on the same queue file: each
        # manager writes back only the jobs it changed (see _save), under its lock.
        self.queue = QueueFile(self.state_file)
        self.notices = self.queue.notices  # problems worth telling the user (e.g. a damaged queue file)
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        self._load()

    # -- persistence --------------------------------------------------------------------------------
    def _load(self) -> None:
        for raw in self.queue.read_or_told().values():  # (unreadable: left as it is, never written over)
            job = self._job_from_disk(raw)
            self._jobs[job.id] = job

    def _job_from_disk(self, raw: dict) -> Job:
        """A saved job as this process should see it: one saved as running whose partial nobody
        holds is queued again (the process running it died), and bytes_done is the partial's size."""
        job = job_from_saved(raw)
        if job.state in ACTIVE and not self._partial_owned_elsewhere(job):
            job.state, job.message = QUEUED, ""
        elif job.state in ACTIVE:
            job.message = ELSEWHERE
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
            with self.queue.lock.acquire(timeout=0):
                on_disk = self.queue.read()
        except (Timeout, StateFileError):  # locked this instant, or unreadable (told when saving)
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

    def _save(self) -> bool:
        """Write the jobs this manager added, changed or removed over the queue file as it is now,
        so a job another process added or moved on meanwhile is kept as that process left it. A
        job done there stays done, whatever this process thought of it. A queue that cannot be
        written (a full disk, a read-only folder) is told once in `notices`; the changes stay
        pending and go with the next save. Returns whether the queue was written."""
        with self._lock:
            try:
                with self.queue.lock:
                    merged = self.queue.read()
                    for job_id in self._removed:
                        merged.pop(job_id, None)
                    for job_id in self._dirty:
                        if job_id not in self._jobs:
                            continue
                        theirs = merged.get(job_id)
                        if theirs is not None and theirs.get("state") == DONE and self._jobs[job_id].state != DONE:
                            self._jobs[job_id] = self._job_from_disk(theirs)  # finished elsewhere
                            continue
                        merged[job_id] = asdict(self._jobs[job_id])
                    self.queue.write(list(merged.values()))
            except (StateFileError, OSError) as exc:  # (filelock's Timeout is an OSError too)
                self.queue.could_not_save(exc)
                return False
            self._dirty.clear()
            self._removed.clear()
            return True

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

    def runs(self, job_id: str) -> bool:
        """Whether this manager's own worker is running the job now."""
        with self._lock:
            return job_id in self._workers

    def wait(self, job_id: str, states=FINISHED | {PAUSED}, timeout: float | None = None) -> Job:
        """Block until the job is in one of `states`; returns it (raises TimeoutError, or
        DownloadError when the job is removed meanwhile). A job another Corral process is running
        is followed through the shared queue (refresh() every FOLLOW_INTERVAL) to its end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._changed:
                job = self._jobs.get(job_id)
                if job is None:
                    raise DownloadError(f"download {job_id} was removed")
                if job.state in states and job_id not in self._telling:
                    return replace(job)
                elsewhere = job_id not in self._workers and job.state in ACTIVE
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"download {job_id} is still {job.state}")
                self._changed.wait(min(left or FOLLOW_INTERVAL, FOLLOW_INTERVAL) if elsewhere else left)
            if elsewhere:
                self.refresh()

    # -- commands ---------------------------------------------------------------------------------
    def enqueue(self, repo_id: str, filename: str, *, revision: str = "main", size: int | None = None,
                sha256: str | None = None, check: bool | None = None) -> Job:
        """Queue a file (or return the existing unfinished job for it, resumed if paused).

        `check`: read its GGUF header on the hub before downloading (None: `check_headers`).
        Raises DownloadError for a file name Corral will not download, AlreadyDownloaded when
        this queue already downloaded this file of this repository and it is still there."""
        try:
            name = check_file_name(filename)
        except HubError as exc:
            raise DownloadError(str(exc)) from None
        existing = self.find(repo_id, filename)
        if existing and existing.state != DONE:
            if check is not None and existing.check != check and existing.state not in ACTIVE:
                self._update(existing.id, existing.state, existing.message, check=check)
            self.resume(existing.id)  # a paused or failed one; nothing happens to the others
            return self.get(existing.id)
        if existing and existing.path and Path(existing.path).is_file():
            raise AlreadyDownloaded(Path(existing.path))
        with self._lock:
            clash = next((j for j in self._jobs.values()
                          if j.name == name and j.state not in FINISHED), None)
        if clash is not None:
            raise DownloadError(f"{clash.repo_id} is already downloading a file named {name}; "
                                "wait for it, or cancel it first")
        job = Job(id=uuid.uuid4().hex[:12], repo_id=repo_id, filename=filename, revision=revision,
                  size=size, sha256=sha256.lower() if sha256 else None,
                  check=self.check_headers if check is None else check)
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
            if job.state in ACTIVE and self._partial_owned_elsewhere(job):
                raise DownloadError(f"{job.name} is being downloaded by another Corral process (the window "
                                    f"or `corral models pull`): {reason} it there.")
            if job.state == DONE or job.state == CANCELLED or (job.state == FAILED and state == PAUSED):
                return
            snapshot = self._update(job_id, state, message)
        if state == CANCELLED:
            self._transfer(job).remove()
        self._emit(DownloadEvent(snapshot, "state"))

    def _stop_reason(self, job_id: str) -> str:
        """Why the job's worker was asked to stop: "pause", "cancel", "shutdown" or ""."""
        with self._lock:
            worker = self._workers.get(job_id)
            return worker.reason if worker is not None else ""

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
            return replace(self._jobs[job_id])  # (_save may have taken in another process's outcome)

    def _transfer(self, job: Job, worker: _Worker | None = None) -> Transfer:
        if worker is None:
            return Transfer(self.models_dir, job.filename, stop=threading.Event())
        return Transfer(self.models_dir, job.filename, stop=worker.stop, open_file=self.open_file,
                        on_bytes=lambda done: self._progress(worker, done),
                        on_note=lambda text: self._set(job.id, DOWNLOADING, text))

    def _emit(self, event: DownloadEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a broken listener must not kill the download
            log.exception("download event listener failed")

    # -- the worker ---------------------------------------------------------------------------------
    def _run(self, worker: _Worker) -> None:
        """A job's thread: it always ends with the job's final state set, saved if the disk lets
        it, told to on_event and wait(), and the worker gone, whatever happened on the way."""
        job_id = worker.job_id
        owner: FileLock | None = None
        snapshot: Job | None = None
        try:
            job = self.get(job_id)
            transfer = self._transfer(job, worker)
            # Only one process writes a partial file: a second Corral (the window and a `corral
            # models pull`) asking for the same file follows the first instead of interleaving
            # bytes. The lock is held until the job's final state is saved, so a process that finds
            # it free while the queue file says "downloading" knows the downloader died (refresh()).
            owner = self.queue.claim_partial(transfer)
            state, message, changes = JobRun(self, job, transfer, worker.stop).run(owned=owner is not None)
        except Exception as exc:  # a bug: report it on the job rather than losing the thread
            log.exception("download %s crashed", job_id)
            state, message, changes = FAILED, f"Download failed: {exc}", {}
        try:
            try:
                with self._lock:
                    del self._workers[job_id]
                    self._telling.add(job_id)
                    snapshot = self._update(job_id, state, message, **changes)
            finally:
                if owner is not None:
                    if snapshot is not None and snapshot.state in (DONE, CANCELLED):  # no partial left
                        with contextlib.suppress(OSError):  # (Windows: removed on release anyway)
                            os.unlink(owner.lock_file)
                    owner.release()
            self._emit(DownloadEvent(snapshot, "state"))
        finally:
            with self._changed:
                self._telling.discard(job_id)
                self._changed.notify_all()
        self._schedule()

    def _partial_owned_elsewhere(self, job: Job) -> bool:
        """Whether another process holds `job`'s partial file right now (see _run)."""
        return self.queue.partial_owned_elsewhere(self._transfer(job))

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


__all__ = ["DownloadManager", "DownloadEvent", "DownloadError", "AlreadyDownloaded", "Job", "STATES",
           "verified_text",
           "QUEUED", "DOWNLOADING", "PAUSED", "VERIFYING", "DONE", "FAILED", "CANCELLED", "PARTIAL_DIR"]
