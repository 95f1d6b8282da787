"""One download job on its worker thread, start to finish (used by downloads.DownloadManager).

The steps, each retried with the job's one `app.core.retry.Retrying` (a stall or a dropped
connection anywhere counts against the same budget, and progress resets it):
1. the file's metadata (size, sha256, commit) from the hub;
2. the header check, when the job asks for it and nothing is downloaded yet: only the start of
   the file is read, and a file that is not a GGUF model Corral can use is refused before the
   transfer (the window and `corral models pull` both get this from here);
3. a file of the same name already in the models folder: the same file (size and sha256) ends
   the job at once; a different one stays where it is and the download takes another name;
4. the transfer into the partial file (download_job.Transfer), resumed with Range;
5. verification against what the hub said: size and sha256; when the hub gave no sha256, the
   finished file must also be a whole GGUF model; then `install()` and `on_complete`.

`run()` returns the job's final (state, message, changes); `changes` always holds bytes_done.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from app.core import gguf_info
from app.core.download_job import (CANCELLED, DONE, DOWNLOADING, FAILED, PAUSED, QUEUED, VERIFYING,
                                   Interrupted, Transfer, TransferFailed, disk_full, file_sha256)
from app.core.hub import HubError
from app.core.memory_plan import format_bytes
from app.core.retry import GaveUp, Retrying

if TYPE_CHECKING:
    from app.core.downloads import DownloadManager, Job

log = logging.getLogger(__name__)

ELSEWHERE = "downloading in another Corral process"

# What a finished job's `verified` says was checked, in words (the CLI's last line, the window).
VERIFIED = {
    "sha256": "size and sha256 verified",
    "size": "size checked and the GGUF structure read; NOT verified byte for byte (the hub gave no sha256)",
    "gguf": "NOT verified against the hub (it gave neither size nor sha256); only the GGUF structure was "
            "checked",
    "existing": "already in the models folder (same size and sha256)",
}


class JobRun:
    def __init__(self, manager: "DownloadManager", job: "Job", transfer: Transfer, stop: threading.Event):
        self.m = manager
        self.job = job
        self.transfer = transfer
        self.stop = stop
        self.what = f"{job.repo_id}/{job.filename}"

    def note(self, text: str, state: str = DOWNLOADING, **changes) -> None:
        self.m._set(self.job.id, state, text, **changes)

    def run(self, owned: bool) -> tuple[str, str, dict]:
        try:
            if not owned:
                # Another process holds the partial: follow it through the shared queue (wait()
                # and refresh() do), and take it over here if that process goes away.
                return (DOWNLOADING, ELSEWHERE, {"bytes_done": self.transfer.size_on_disk()})
            self.note("")
            return self._attempts()
        except Interrupted:
            reason = self.m._stop_reason(self.job.id)
            if reason == "cancel":
                self.transfer.remove()
            state, message = {"pause": (PAUSED, "paused"), "cancel": (CANCELLED, "cancelled")}.get(
                reason, (QUEUED, ""))
            return (state, message, {"bytes_done": self.transfer.size_on_disk()})

    def _attempts(self) -> tuple[str, str, dict]:
        job, transfer, hub = self.job, self.transfer, self.m.hub
        retry = Retrying(self.m.retry_policy, on_retry=self.note, stop=self.stop)
        checked = not job.check or transfer.size_on_disk() > 0  # a partial was checked when it began
        looked = False
        while True:
            before = transfer.bytes_done
            try:
                meta = hub.file_metadata(job.repo_id, job.filename, job.revision, retrying=retry)
                expected = meta.sha256 or job.sha256
                size = meta.size if meta.size is not None else job.size
                self.note("", size=size, sha256=expected)
                if not checked:
                    self.note(hub.read_header(job.repo_id, job.filename, job.revision, meta=meta,
                                              retrying=retry).summary())
                    checked = True
                if not looked:
                    looked = True
                    present = self._already_there(size, expected)
                    if present is not None:
                        return (DONE, VERIFIED["existing"], {"path": str(present), "verified": "existing",
                                                            "bytes_done": present.stat().st_size})
                offset = transfer.prepare(meta, expected)
                if size is not None:
                    need, free = size - offset, self.m.free_space(self.m.models_dir)
                    if need > free:
                        return (FAILED, f"Not enough disk space for {job.name}: needs {format_bytes(need)}, "
                                        f"{format_bytes(free)} free on {self.m.models_dir}.",
                                {"bytes_done": offset})
                transfer.fetch(hub, stall_timeout=self.m.stall_timeout)
                return self._verify(size, expected)
            except gguf_info.GGUFError as exc:  # from the header check: nothing was downloaded
                return (FAILED, f"Not downloaded: {exc}", {"bytes_done": 0})
            except HubError as exc:
                if not exc.retryable:
                    return (FAILED, str(exc), {"bytes_done": transfer.size_on_disk()})
                problem = str(exc)
            except TransferFailed as exc:
                problem = f"{self.what}: {exc}"
            except OSError as exc:
                if disk_full(exc):
                    return (PAUSED, f"The disk is full ({self.m.models_dir}): free some space, then resume. "
                                    f"The partial download ({format_bytes(transfer.size_on_disk())}) is kept.",
                            {"bytes_done": transfer.size_on_disk()})
                return (FAILED, f"Could not write {transfer.part}: {exc.strerror or exc}",
                        {"bytes_done": transfer.size_on_disk()})
            if transfer.bytes_done > before:
                retry.progressed()
            try:
                retry.wait_after(problem)
            except GaveUp as exc:
                return (FAILED, f"Download failed: {exc}", {"bytes_done": transfer.size_on_disk()})

    def _already_there(self, size: int | None, expected: str | None) -> Path | None:
        """The file in the models folder under this job's name if it is this very file (same size
        and sha256: finished by another process, or downloaded before); else None, and a file of
        that name that is a different one is left alone (the download takes another name)."""
        dest = self.m.models_dir / self.job.name
        try:
            if not dest.is_file():
                return None
            same_size = size is not None and dest.stat().st_size == size
        except OSError:
            return None
        if same_size and expected:
            self.note(f"checking the {self.job.name} already in the models folder", VERIFYING)
            try:
                if file_sha256(dest, self.stop) == expected:
                    return dest
            except OSError:
                pass
        which = "A file named" if same_size and not expected else "A different file named"
        self.note(f"{which} {self.job.name} is already in the models folder; it is kept, and this "
                  "download will be saved under another name.")
        return None

    def _verify(self, size: int | None, expected: str | None) -> tuple[str, str, dict]:
        job, transfer = self.job, self.transfer
        self.note("checking size and sha256" if expected else "checking the file", VERIFYING)
        got_size, digest = transfer.size_on_disk(), transfer.digest()
        problem = None
        if size is not None and got_size != size:
            problem = f"it has {got_size:,} bytes but the hub says {size:,}"
        elif expected and digest != expected:
            problem = f"its sha256 is {digest} but the hub says {expected}"
        elif not expected:  # nothing to compare the bytes with: the model must at least be whole
            try:
                gguf_info.inspect(transfer.part)
            except gguf_info.GGUFError as exc:
                problem = f"it is not a whole GGUF model ({exc.reason})"
        if problem:
            transfer.remove()
            return (FAILED, f"{job.name} failed verification: {problem}. The damaged download was removed; "
                            "try again.", {"bytes_done": 0})
        verified = "sha256" if expected else "size" if size is not None else "gguf"
        dest = transfer.install(self.m.models_dir, job.name)
        message = "" if verified == "sha256" else VERIFIED[verified]
        if dest.name != job.name:
            message = "; ".join(filter(None, (
                f"saved as {dest.name}: a different file named {job.name} is in the models folder "
                "and was left as it is", message)))
        if self.m.on_complete is not None:
            try:
                self.m.on_complete(dest, replace(self.m.get(job.id), path=str(dest), state=DONE))
            except Exception as exc:
                log.exception("registering %s failed", dest)
                message = "; ".join(filter(None, (message, f"downloaded, but adding it to the library "
                                                           f"failed: {exc}")))
        return (DONE, message, {"path": str(dest), "verified": verified, "bytes_done": got_size})
