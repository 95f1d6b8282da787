"""DownloadManager against a real local hub, with the real huggingface_hub client.

Files are a few MB of random bytes; the hub is told to misbehave per file. Waiting is done with
manager.wait() / hub.wait_for_bytes() / events, each with a timeout — never a bare sleep.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from app.core.download_job import PARTIAL_DIR, default_open
from app.core.downloads import (CANCELLED, DONE, DOWNLOADING, FAILED, PAUSED, QUEUED, AlreadyDownloaded,
                                DownloadError, DownloadManager)
from app.core.hub import HubClient
from app.core.memory_plan import format_bytes
from app.testing.hub_server import CHUNK, start_corral, local_hub  # noqa: F401  (local_hub is a fixture)

REPO = "corral-test/Tiny-GGUF"
FILE = "tiny.Q4_K_M.gguf"
SIZE = 4 << 20
MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def hub(local_hub, payload):
    local_hub.add_repo(REPO, downloads=5)
    local_hub.add_file(REPO, FILE, payload)
    return local_hub


class Recorder:
    """Collects events (they arrive on worker threads) and completed paths."""

    def __init__(self):
        self.events = []
        self.completed: list[Path] = []
        self.progress = queue.Queue()

    def on_event(self, event):
        self.events.append(event)
        if event.kind == "progress":
            self.progress.put(event)

    def on_complete(self, path, job):
        self.completed.append(path)

    def wait_progress(self, at_least: int, timeout: float = 20):
        """The first progress event with at least this many bytes done."""
        while True:
            event = self.progress.get(timeout=timeout)
            if event.job.bytes_done >= at_least:
                return event


@pytest.fixture
def make_manager(tmp_path, hub):
    made = []

    def make(token=None, **options) -> tuple[DownloadManager, Recorder]:
        rec = Recorder()
        # The payload is random bytes, not a GGUF: these tests are about the transfer, and the
        # header check has its own tests (check_headers=True there).
        options = {"stall_timeout": 2.0, "backoff": 0.05, "max_attempts": 3, "progress_interval": 0.02,
                   "check_headers": False, "on_event": rec.on_event, **options}
        manager = DownloadManager(tmp_path / "models", tmp_path / "downloads" / "queue.json",
                                  HubClient(endpoint=hub.url, token=token or "hf_no_access"),
                                  on_complete=rec.on_complete, **options)
        made.append(manager)
        return manager, rec

    yield make
    for manager in made:
        manager.shutdown(timeout=10)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def partial_of(tmp_path: Path, name: str = FILE) -> Path:
    return tmp_path / "models" / PARTIAL_DIR / f"{name}.part"


def gets(hub, name: str = FILE):
    return hub.file_requests(REPO, name, "GET")


def range_start(request) -> int:
    return int(request.range.split("=")[1].split("-")[0]) if request.range else 0


def run(manager, **enqueue) -> object:
    job = manager.enqueue(REPO, FILE, **enqueue)
    manager.start()
    return manager.wait(job.id, timeout=30)


# -- the normal path -----------------------------------------------------------------------------

def test_normal_download_is_verified_renamed_and_reported(hub, make_manager, tmp_path, payload):
    manager, rec = make_manager()
    hub.set_faults(REPO, FILE, throttle=16 * MiB)  # long enough (~0.25 s) for progress events
    job = run(manager)
    assert job.state == DONE, job.message
    dest = tmp_path / "models" / FILE
    assert Path(job.path) == dest and dest.read_bytes() == payload
    assert job.sha256 == sha(payload) and job.size == SIZE and job.bytes_done == SIZE
    assert rec.completed == [dest]
    assert not any((tmp_path / "models" / PARTIAL_DIR).iterdir())
    states = [e.job.state for e in rec.events if e.kind == "state"]
    assert states[0] == QUEUED and "verifying" in states and states[-1] == DONE
    progress = [e for e in rec.events if e.kind == "progress"]
    assert progress and all(e.speed and e.speed > 0 and e.eta is not None for e in progress)
    assert progress[-1].job.bytes_done <= SIZE
    saved = json.loads((tmp_path / "downloads" / "queue.json").read_text())
    assert saved["jobs"][0]["state"] == DONE
    with pytest.raises(AlreadyDownloaded):
        manager.enqueue(REPO, FILE)


def test_wait_returns_after_the_listeners_heard_the_final_state(hub, make_manager):
    """wait() returning means on_event was told: a caller that prints from events and stops on
    wait() (`corral models pull`, the tests) never misses the last line. A slow listener makes the
    old race (final event sent after wait() woke) certain."""
    heard = []

    def slow_listener(event):
        if event.kind == "state" and event.job.state == DONE:
            time.sleep(0.5)
            heard.append(event.job.state)

    manager, _ = make_manager(on_event=slow_listener)
    job = run(manager)
    assert job.state == DONE and heard == [DONE]


def test_drop_at_half_resumes_from_the_partial(hub, make_manager, payload):
    hub.set_faults(REPO, FILE, drop_after=SIZE // 2)
    manager, _ = make_manager()
    job = run(manager)
    assert job.state == DONE, job.message
    first, second = gets(hub)
    assert first.range is None and first.bytes_sent == SIZE // 2
    assert 0 < range_start(second) <= SIZE // 2
    resent = hub.bytes_sent(REPO, FILE) - SIZE
    assert resent <= MiB + CHUNK
    assert Path(job.path).read_bytes() == payload


def test_server_ignoring_range_on_resume_still_gives_the_right_file(hub, make_manager, payload):
    hub.set_faults(REPO, FILE, drop_after=SIZE // 2, ignore_range=True)
    manager, _ = make_manager()
    job = run(manager)
    assert job.state == DONE, job.message
    assert Path(job.path).read_bytes() == payload


def start_slowly(hub, make_manager, at_least: int):
    """A manager whose download of FILE (hub throttled) has passed `at_least` bytes."""
    hub.set_faults(REPO, FILE, throttle=2 * MiB)
    manager, rec = make_manager()
    job = manager.enqueue(REPO, FILE)
    manager.start()
    rec.wait_progress(at_least)
    return manager, job


def pause_midway(hub, make_manager):
    manager, job = start_slowly(hub, make_manager, MiB // 2)
    manager.pause(job.id)
    paused = manager.wait(job.id, timeout=10)
    assert paused.state == PAUSED
    return manager, paused


def test_pause_and_resume_continue_the_partial(hub, make_manager, tmp_path, payload):
    manager, paused = pause_midway(hub, make_manager)
    kept = partial_of(tmp_path).stat().st_size
    assert 0 < kept < SIZE and paused.bytes_done == kept
    assert partial_of(tmp_path).read_bytes() == payload[:kept]

    hub.clear_faults()
    manager.resume(paused.id)
    done = manager.wait(paused.id, {DONE, FAILED}, timeout=30)
    assert done.state == DONE, done.message
    assert range_start(gets(hub)[-1]) == kept
    assert Path(done.path).read_bytes() == payload


def test_cancel_removes_the_partial(hub, make_manager, tmp_path):
    manager, job = start_slowly(hub, make_manager, 1)
    manager.cancel(job.id)
    assert manager.wait(job.id, timeout=10).state == CANCELLED
    assert not partial_of(tmp_path).exists()
    assert not (tmp_path / "models" / PARTIAL_DIR / f"{FILE}.part.json").exists()
    assert not (tmp_path / "models" / FILE).exists()


def pulling_child(hub, tmp_path, queue_file: Path) -> subprocess.Popen:
    """Another Corral process (as `corral models pull` would be) downloading FILE into the same
    models folder and queue; it prints bytes done as it goes and `end STATE` when finished."""
    script = textwrap.dedent(f"""
        from app.core.downloads import DownloadManager
        from app.core.hub import HubClient
        def on_event(e):
            if e.kind == "progress":
                print(e.job.bytes_done, flush=True)
        m = DownloadManager({str(tmp_path / "models")!r}, {str(queue_file)!r},
                            HubClient(endpoint={hub.url!r}, token="x"), on_event=on_event,
                            progress_interval=0.05, check_headers=False)
        job = m.enqueue({REPO!r}, {FILE!r})
        m.start()
        print("end", m.wait(job.id, timeout=60).state, flush=True)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # keeps the network guard
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)


@contextlib.contextmanager
def running(child: subprocess.Popen):
    """The child process, killed on the way out if the test left it running."""
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def sigkill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    assert child.wait(10) == -signal.SIGKILL


def wait_for_progress(child: subprocess.Popen, at_least: int, timeout: float = 30) -> None:
    """Until the child has reported `at_least` bytes done (its other lines are skipped)."""
    reached = threading.Event()

    def watch():
        for line in child.stdout:
            if line.strip().isdigit() and int(line) >= at_least:
                reached.set()
                return
    threading.Thread(target=watch, daemon=True).start()
    assert reached.wait(timeout), f"the child never reported {at_least:,} bytes"


def saved_states(queue_file: Path) -> dict[str, str]:
    return {j["id"]: j["state"] for j in json.loads(queue_file.read_text())["jobs"]}


def test_new_process_resumes_what_a_killed_one_left(hub, tmp_path, payload):
    """The first manager runs in a subprocess that is SIGKILLed mid-download."""
    hub.set_faults(REPO, FILE, throttle=2 * MiB)
    with running(pulling_child(hub, tmp_path, tmp_path / "queue.json")) as child:
        wait_for_progress(child, 2 * MiB)  # > the 1 MiB write buffer: some bytes are on disk
        sigkill(child)

    saved = json.loads((tmp_path / "queue.json").read_text())
    assert saved["jobs"][0]["state"] == DOWNLOADING
    left = partial_of(tmp_path).stat().st_size
    assert 0 < left < SIZE
    hub.clear_faults()
    manager = DownloadManager(tmp_path / "models", tmp_path / "queue.json", HubClient(endpoint=hub.url, token="x"),
                              check_headers=False)
    try:
        [job] = manager.jobs()
        assert job.state == QUEUED and job.bytes_done == left
        manager.start()
        done = manager.wait(job.id, {DONE, FAILED}, timeout=30)
    finally:
        manager.shutdown()
    assert done.state == DONE, done.message
    assert range_start(gets(hub)[-1]) == left
    assert Path(done.path).read_bytes() == payload


def test_partial_of_a_file_that_changed_on_the_hub_starts_again(hub, make_manager, tmp_path):
    manager, job = pause_midway(hub, make_manager)
    new = os.urandom(SIZE // 2)
    hub.add_file(REPO, FILE, new)  # a new commit: new ETag
    hub.clear_faults()
    manager.resume(job.id)
    done = manager.wait(job.id, {DONE, FAILED}, timeout=30)
    assert done.state == DONE, done.message
    assert gets(hub)[-1].range is None
    assert Path(done.path).read_bytes() == new and done.sha256 == sha(new)


# -- failures ------------------------------------------------------------------------------------

def test_wrong_bytes_fail_and_leave_nothing(hub, make_manager, tmp_path):
    hub.set_faults(REPO, FILE, corrupt_offset=SIZE // 3)
    manager, rec = make_manager()
    job = run(manager)
    assert job.state == FAILED
    assert "sha256" in job.message and "removed" in job.message
    assert not list((tmp_path / "models").glob("*.gguf"))
    assert not any((tmp_path / "models" / PARTIAL_DIR).iterdir())
    assert rec.completed == []


@pytest.mark.parametrize("status, words", [
    (404, "not found"),
    (401, "add a Hugging Face token"),
    (403, "add a Hugging Face token"),
])
def test_client_errors_fail_at_once_with_a_clear_message(hub, make_manager, status, words):
    hub.set_faults(REPO, FILE, status=status)
    manager, _ = make_manager()
    job = run(manager)
    assert job.state == FAILED and words in job.message, job.message
    assert len(hub.file_requests(REPO, FILE, "HEAD")) == 1  # not retried


def test_missing_file_and_repo_are_not_found(hub, make_manager):
    manager, _ = make_manager()
    manager.start()
    for repo, name in ((REPO, "nope.gguf"), ("nobody/nothing-GGUF", FILE)):
        job = manager.wait(manager.enqueue(repo, name).id, timeout=30)
        assert job.state == FAILED and "not found" in job.message, job.message


def test_gated_repo_needs_a_token(hub, make_manager, payload):
    hub.add_repo(REPO, gated=True)
    manager, _ = make_manager()
    job = run(manager)
    assert job.state == FAILED and "gated" in job.message and "add a Hugging Face token" in job.message

    manager.shutdown()
    with_token, _ = make_manager(token=hub.token)
    job = with_token.enqueue(REPO, FILE)  # the failed job is taken up again
    with_token.start()
    job = with_token.wait(job.id, {DONE, FAILED}, timeout=30)
    assert job.state == DONE, job.message
    assert Path(job.path).read_bytes() == payload


def test_server_errors_are_retried_then_fail_with_the_status(hub, make_manager):
    hub.set_faults(REPO, FILE, status=500)
    manager, _ = make_manager(max_attempts=3)
    job = run(manager)
    assert job.state == FAILED and "500" in job.message and "3 attempts" in job.message, job.message
    assert len(hub.file_requests(REPO, FILE, "HEAD")) == 3


def test_a_passing_server_error_is_retried_and_the_download_completes(hub, make_manager, payload):
    hub.set_faults(REPO, FILE, status=503, status_times=2, status_methods=("GET",))
    manager, _ = make_manager(max_attempts=4)
    job = run(manager)
    assert job.state == DONE, job.message
    assert [r.status for r in gets(hub)] == [503, 503, 200]


def test_a_stalled_server_is_retried_and_the_download_completes(hub, make_manager, payload):
    hub.set_faults(REPO, FILE, stall_after=MiB, stall_seconds=None)  # stalls until the hub stops
    manager, rec = make_manager(stall_timeout=0.5)
    job = run(manager)
    assert job.state == DONE, job.message
    first, second = gets(hub)
    assert first.bytes_sent == MiB and 0 < range_start(second) <= MiB
    assert any("stopped sending" in e.job.message for e in rec.events if e.kind == "state")
    assert Path(job.path).read_bytes() == payload


def test_not_enough_disk_space_is_refused_before_the_transfer(hub, make_manager, tmp_path):
    manager, _ = make_manager(free_space=lambda path: 1_200_000)
    job = run(manager)
    assert job.state == FAILED
    assert job.message == (f"Not enough disk space for {FILE}: needs {format_bytes(SIZE)}, "
                           f"{format_bytes(1_200_000)} free on {tmp_path / 'models'}.")
    assert gets(hub) == []


class FillingDisk:
    """open_file for the manager: writes fail with ENOSPC once `room` bytes were written."""

    def __init__(self, room: int):
        self.room = room
        self.full = True

    def __call__(self, path, mode):
        real = default_open(path, mode)
        disk = self

        class Writer:
            def write(self, data):
                if disk.full and len(data) > disk.room:
                    real.write(data[:disk.room])
                    disk.room = 0
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                disk.room -= len(data)
                return real.write(data)

            def __getattr__(self, name):
                return getattr(real, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                real.close()

        return Writer()


def test_disk_full_while_writing_pauses_and_keeps_the_partial(hub, make_manager, tmp_path, payload):
    disk = FillingDisk(room=3 * MiB // 2)
    manager, _ = make_manager(open_file=disk)
    job = run(manager)
    assert job.state == PAUSED and "disk is full" in job.message, job.message
    part = partial_of(tmp_path).read_bytes()
    assert len(part) == 3 * MiB // 2 and part == payload[:len(part)]

    disk.full = False
    manager.resume(job.id)
    done = manager.wait(job.id, {DONE, FAILED}, timeout=30)
    assert done.state == DONE, done.message
    assert range_start(gets(hub)[-1]) == len(part)
    assert Path(done.path).read_bytes() == payload


# -- the queue -----------------------------------------------------------------------------------

def test_a_queue_file_with_unreadable_entries_still_loads_the_good_ones(make_manager, tmp_path):
    queue_file = tmp_path / "downloads" / "queue.json"
    queue_file.parent.mkdir(parents=True)
    good = {"id": "a1", "repo_id": REPO, "filename": FILE, "state": "paused", "size": SIZE}
    queue_file.write_text(json.dumps({"version": 1, "jobs": [
        good, "not a job", {"id": "b2", "repo_id": REPO}, {"id": 3, "repo_id": REPO, "filename": "x"},
        {"id": "c3", "repo_id": REPO, "filename": "odd.gguf", "state": "exploded", "size": "big",
         "created": "yesterday", "bytes_done": None}]}))
    manager, _ = make_manager()
    jobs = {j.id: j for j in manager.jobs()}
    assert sorted(jobs) == ["a1", "c3"]
    [note] = manager.notices  # the three it left out are named, the original is kept
    assert "3 entries that could not be read were left out" in note and "queue.json.damaged-" in note
    [aside] = queue_file.parent.glob("queue.json.damaged-*")
    assert len(json.loads(aside.read_text())["jobs"]) == 5
    assert (jobs["a1"].state, jobs["a1"].size) == (PAUSED, SIZE)
    assert (jobs["c3"].state, jobs["c3"].size, jobs["c3"].created, jobs["c3"].bytes_done) == (
        PAUSED, None, 0.0, 0)
    manager.start()  # scheduling sorts by `created`: no TypeError from the odd entry
    assert manager.jobs()


def test_a_damaged_queue_file_is_set_aside_and_the_partial_is_resumed(hub, make_manager, tmp_path,
                                                                        payload):
    manager, paused = pause_midway(hub, make_manager)
    manager.shutdown()
    assert paused.bytes_done > 0
    queue_file = tmp_path / "downloads" / "queue.json"
    queue_file.write_text('{"version": 1, "jobs": [{"id": "')  # cut short
    hub.clear_faults()

    again, _ = make_manager()
    assert again.jobs() == []
    [note] = again.notices
    assert note.startswith(f"{queue_file}: is not valid JSON") and "the queue starts empty" in note
    [aside] = queue_file.parent.glob("queue.json.damaged-*")
    assert aside.name in note and aside.read_text() == '{"version": 1, "jobs": [{"id": "'  # kept exactly
    job = run(again)  # pulled again: it continues from the partial file
    assert job.state == DONE and (tmp_path / "models" / FILE).read_bytes() == payload
    assert range_start(gets(hub)[-1]) > 0


def test_queue_survives_a_restart(hub, make_manager, payload):
    hub.add_file(REPO, "second.gguf", payload[:MiB])
    first, _ = make_manager()
    a = first.enqueue(REPO, FILE)
    b = first.enqueue(REPO, "second.gguf")
    first.pause(b.id)
    first.shutdown()

    second, _ = make_manager()
    assert {(j.id, j.state) for j in second.jobs()} == {(a.id, QUEUED), (b.id, PAUSED)}
    second.start()
    assert second.wait(a.id, timeout=30).state == DONE
    assert second.get(b.id).state == PAUSED and gets(hub, "second.gguf") == []
    second.resume(b.id)
    assert second.wait(b.id, {DONE, FAILED}, timeout=30).state == DONE

    third, _ = make_manager()
    assert {j.state for j in third.jobs()} == {DONE}


@pytest.mark.parametrize("parallel", [1, 2])
def test_jobs_run_one_at_a_time_or_in_parallel(hub, make_manager, payload, parallel):
    hub.add_file(REPO, "second.gguf", payload[:MiB])
    for name in (FILE, "second.gguf"):
        hub.set_faults(REPO, name, throttle=8 * MiB)
    manager, _ = make_manager(max_parallel=parallel)
    jobs = [manager.enqueue(REPO, name) for name in (FILE, "second.gguf")]
    manager.start()
    for job in jobs:
        assert manager.wait(job.id, timeout=30).state == DONE
    assert hub.wait_idle()
    [a], [b] = gets(hub, FILE), gets(hub, "second.gguf")
    overlap = a.started < b.ended and b.started < a.ended
    assert overlap == (parallel == 2)


def test_two_repos_cannot_download_the_same_file_name_at_once(hub, make_manager, payload):
    hub.add_file("someone-else/Tiny-GGUF", FILE, payload)
    manager, _ = make_manager()
    manager.enqueue(REPO, FILE)
    with pytest.raises(DownloadError, match="already downloading a file named"):
        manager.enqueue("someone-else/Tiny-GGUF", FILE)


def test_two_processes_share_the_queue_and_never_write_the_same_partial(hub, make_manager, tmp_path,
                                                                          payload):
    """The window and `corral models pull` at once: a child process downloads FILE slowly while a
    manager here, on the same queue and models folder, adds and finishes another file. Each keeps
    the other's jobs in the queue file, FILE is fetched once, and refresh() shows here what the
    other process did."""
    hub.add_file(REPO, "second.gguf", payload[:MiB])
    hub.set_faults(REPO, FILE, throttle=2 * MiB)
    queue_file = tmp_path / "downloads" / "queue.json"
    with running(pulling_child(hub, tmp_path, queue_file)) as child:
        assert int(child.stdout.readline()) > 0  # the child is writing the partial

        here, _ = make_manager()
        [theirs] = here.jobs()  # the child's job, read from the shared queue file
        assert theirs.state == DOWNLOADING and "another Corral process" in theirs.message
        mine = here.enqueue(REPO, "second.gguf")
        here.start()
        assert here.wait(mine.id, timeout=30).state == DONE
        assert here.get(theirs.id).state == DOWNLOADING  # left to the child, not started here
        assert saved_states(queue_file)[mine.id] == DONE

        last = [line for line in child.stdout if line.startswith("end")]
        assert last == [f"end {DONE}\n"] and child.wait(10) == 0
        # The child's last write kept the job this process added meanwhile.
        assert saved_states(queue_file) == {theirs.id: DONE, mine.id: DONE}
    assert (tmp_path / "models" / FILE).read_bytes() == payload
    assert len(gets(hub, FILE)) == 1  # one process fetched it, once

    changed, gone = here.refresh()
    assert [(j.id, j.state) for j in changed] == [(theirs.id, DONE)] and gone == []
    assert here.get(theirs.id).path == str(tmp_path / "models" / FILE)

    # A third "process" forgets a finished job: the next refresh here drops it too.
    other, _ = make_manager()
    other.remove(mine.id)
    assert here.refresh() == ([], [mine.id])
    assert [j.id for j in here.jobs()] == [theirs.id]


def test_a_download_left_by_a_killed_process_is_continued_here_on_refresh(hub, make_manager,
                                                                          tmp_path, payload):
    hub.set_faults(REPO, FILE, throttle=MiB)
    queue_file = tmp_path / "downloads" / "queue.json"
    with running(pulling_child(hub, tmp_path, queue_file)) as child:
        wait_for_progress(child, 2 * MiB)  # > the 1 MiB write buffer: some bytes are on disk
        here, _ = make_manager()
        here.start()
        [theirs] = here.jobs()
        assert theirs.state == DOWNLOADING  # still running in the child: not touched here
        sigkill(child)
    hub.clear_faults()
    left = partial_of(tmp_path).stat().st_size
    changed, _ = here.refresh()  # the child's lock died with it: the job is an orphan now
    assert [(j.id, j.state) for j in changed] == [(theirs.id, QUEUED)]
    assert here.wait(theirs.id, {DONE, FAILED}, timeout=30).state == DONE
    assert (tmp_path / "models" / FILE).read_bytes() == payload
    assert range_start(gets(hub)[-1]) == left  # continued from the partial


# -- corral models pull ----------------------------------------------------------------------------

def corral(hub, home: Path, *argv: str) -> subprocess.Popen:
    return start_corral(hub, home, *argv)


def test_pull_ctrl_c_pauses_and_pulling_again_resumes(hub, tmp_path, payload):
    hub.set_faults(REPO, FILE, throttle=2 * MiB)
    first = corral(hub, tmp_path, "models", "pull", REPO, FILE, "--no-check")
    try:
        assert hub.wait_for_bytes(REPO, FILE, MiB, timeout=30)
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, err
    assert "run the same command again to resume" in err
    kept = partial_of(tmp_path).stat().st_size
    assert 0 < kept < SIZE

    hub.clear_faults()
    second = corral(hub, tmp_path, "models", "pull", REPO, FILE, "--no-check")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert f"Resuming {FILE} from {format_bytes(kept)}\n" in err and "sha256 verified" in err
    assert range_start(gets(hub)[-1]) == kept
    assert Path(out.strip()).read_bytes() == payload


def test_pull_says_when_the_queue_file_was_damaged_and_goes_on(hub, tmp_path, payload):
    queue_file = tmp_path / "downloads" / "queue.json"
    queue_file.parent.mkdir(parents=True)
    queue_file.write_text("[{")
    pull = corral(hub, tmp_path, "models", "pull", REPO, FILE, "--no-check")
    out, err = pull.communicate(timeout=60)
    assert pull.returncode == 0, err
    assert err.count(f"{queue_file}: is not valid JSON") == 1 and "queue.json.damaged-" in err
    assert Path(out.strip().splitlines()[-1]).read_bytes() == payload


def test_pull_reports_failures_as_one_line(hub, tmp_path):
    proc = corral(hub, tmp_path, "models", "pull", REPO, "missing.gguf", "--no-check")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip().splitlines() == [f"corral: {REPO}/missing.gguf was not found: the repository has no such file."]
