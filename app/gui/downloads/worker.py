"""The GUI's side of the download manager: core callbacks (worker threads) → Qt signals.

`DownloadController` owns one `app.core.downloads.DownloadManager`. The manager calls `on_event`
and `on_complete` on its own worker threads; here they only emit a signal, which Qt queues to the
UI thread. There, progress events are coalesced (the newest per job, delivered every
`interval_ms`), state changes go out at once. A finished file is registered in the library on the
worker thread (file work, no widgets), then `completed(path)` tells the library view to refresh.

The manager (and with it huggingface_hub, ~0.3 s of imports) is made lazily: on the first
download, or by `start_later()` after the window is shown when the saved queue has unfinished
jobs. Offline mode stops every worker and refuses new downloads before any request is made.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.core.settings import Settings

UNFINISHED = ("queued", "downloading", "paused", "verifying")


class OfflineError(Exception):
    pass


OFFLINE_MESSAGE = ("Offline mode is on: Corral makes no network request. Turn it off in "
                   "Settings (Ctrl+,) to download models.")


class DownloadController(QObject):
    jobChanged = Signal(object)    # DownloadEvent, on the UI thread (progress coalesced)
    jobRemoved = Signal(str)       # job id
    completed = Signal(str)        # the path of a verified file now in the models folder
    ready = Signal()               # the manager exists; jobs() is meaningful
    noticed = Signal(str)          # a problem to show the user (e.g. the queue file was damaged)
    _fromWorker = Signal(object)   # emitted on worker threads, delivered queued
    _completedFromWorker = Signal(str)

    def __init__(self, settings: Settings, state_file: str | os.PathLike, parent: QObject | None = None,
                 *, max_parallel: int = 2, interval_ms: int = 150, watch_ms: int = 1000) -> None:
        super().__init__(parent)
        self.settings = settings
        self.state_file = Path(state_file)
        self.max_parallel = max_parallel
        self.manager: Any = None
        self._starting = False  # start_later() is importing the manager's modules
        self.notices: list[str] = []  # told so far (a Downloads screen made later shows them)
        self._pending: dict[str, Any] = {}
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._flush)
        self._fromWorker.connect(self._on_event)
        self._completedFromWorker.connect(self.completed)
        # A `corral models pull` in a terminal shares the queue file: look at it now and then,
        # so its jobs show up here (and a job it left behind when killed is continued here).
        self._watch = QTimer(self)
        self._watch.setInterval(watch_ms)
        self._watch.timeout.connect(self._look_at_the_queue)
        self._watch.start()

    # ------------------------------------------------------------------ the manager
    @property
    def models_dir(self) -> Path:
        return self.settings.effective_models_dir()

    def _hub(self):
        from app.core.hub import client_for

        return client_for(self.settings)

    def ensure_manager(self):
        if self.manager is None:
            from app.core.downloads import DownloadManager

            self.manager = DownloadManager(self.models_dir, self.state_file, self._hub(),
                                           max_parallel=self.max_parallel,
                                           on_event=self.manager_event,
                                           on_complete=self._on_complete)
            if not self.settings.offline:
                self.manager.start()
            self.ready.emit()
            self._tell_notices()
        return self.manager

    def _tell_notices(self) -> None:
        while self.manager.notices:
            self.notices.append(self.manager.notices.pop(0))
            self.noticed.emit(self.notices[-1])

    def has_saved_jobs(self) -> bool:
        return self.state_file.exists()

    def start_later(self) -> None:
        """After start-up: bring the saved queue back (and continue it). The imports run off the
        UI thread first, so the window does not stall for them."""
        if self.has_saved_jobs() and self.manager is None and not self._starting:
            from app.gui import background

            self._starting = True
            background.run(lambda: __import__("app.core.downloads"),
                           done=lambda _m: self.ensure_manager())

    def jobs(self) -> list:
        return self.manager.jobs() if self.manager is not None else []

    # ------------------------------------------------------------------ commands
    def enqueue(self, repo_id: str, filename: str, *, size: int | None = None,
                sha256: str | None = None):
        """Queue a file; raises OfflineError or app.core.downloads.DownloadError with a message."""
        if self.settings.offline:
            raise OfflineError(OFFLINE_MESSAGE)
        return self.ensure_manager().enqueue(repo_id, filename, size=size, sha256=sha256)

    def pause(self, job_id: str) -> None:
        self.ensure_manager().pause(job_id)

    def resume(self, job_id: str) -> None:
        if self.settings.offline:
            raise OfflineError(OFFLINE_MESSAGE)
        self.ensure_manager().resume(job_id)

    def cancel(self, job_id: str) -> None:
        self.ensure_manager().cancel(job_id)

    def retry(self, job_id: str) -> None:
        self.resume(job_id)  # a failed job is queued again and continues from its partial

    def remove(self, job_id: str) -> None:
        self.ensure_manager().remove(job_id)
        self._pending.pop(job_id, None)
        self.jobRemoved.emit(job_id)

    def apply_settings(self, settings: Settings) -> None:
        """New settings: a new hub client (token, offline); offline stops every worker now."""
        was_offline = self.settings.offline
        self.settings = settings
        if self.manager is None:
            return
        if settings.offline and not was_offline:
            self.manager.shutdown(timeout=10)  # running jobs go back to the queue
        self.manager.hub = self._hub()
        if settings.effective_models_dir() != self.manager.models_dir and not self._busy():
            self.manager.models_dir = settings.effective_models_dir()
        if not settings.offline:
            self.manager.start()
        for job in self.manager.jobs():
            self._emit_snapshot(job)

    def _busy(self) -> bool:
        return any(j.state in ("downloading", "verifying") for j in self.manager.jobs())

    def shutdown(self) -> None:
        self._watch.stop()
        if self.manager is not None:
            self.manager.shutdown(timeout=5)

    # ------------------------------------------------------------------ events
    def manager_event(self, event) -> None:
        """The manager's on_event, called on its worker threads: hand the event to the UI thread."""
        self._fromWorker.emit(event)

    def _emit_snapshot(self, job) -> None:
        from app.core.downloads import DownloadEvent

        self.jobChanged.emit(DownloadEvent(job, "state"))

    def _on_complete(self, path: Path, job) -> None:
        """On the worker thread: add the file to the library, then tell the UI."""
        from app.core.library import register_download

        register_download(self.models_dir, path)
        self._completedFromWorker.emit(str(path))

    def _on_event(self, event) -> None:
        if event.kind == "progress":
            self._pending[event.job.id] = event
            if not self._timer.isActive():
                self._timer.start()
            return
        self._pending.pop(event.job.id, None)
        self.jobChanged.emit(event)

    def _look_at_the_queue(self) -> None:
        if self.manager is None:
            if self.has_saved_jobs():
                self.start_later()
            return
        changed, gone = self.manager.refresh()
        self._tell_notices()
        for job in changed:
            self._pending.pop(job.id, None)
            self._emit_snapshot(job)
        for job_id in gone:
            self._pending.pop(job_id, None)
            self.jobRemoved.emit(job_id)

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        for event in pending.values():
            self.jobChanged.emit(event)
        if not pending:
            self._timer.stop()
