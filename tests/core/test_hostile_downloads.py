"""Standing hostile-input suite for the hub and the download manager (issue 14), run as users run it.

A hub that stalls, drops, answers without the usual headers or with listings of any shape; file
names that are no file names; two Corral processes at once; a disk that fills. Every time: no
traceback and no hang; one clear line when something is refused; the user's files never
replaced or lost; what was verified said honestly. The commands run in child processes
(`python -m app`, as shipped) against the local test hub (app/testing/hub_server.py).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from app.core.downloads import DONE, DOWNLOADING, FAILED, PAUSED, DownloadError, DownloadManager
from app.core.hub import HubClient
from app.testing import models
from app.testing.hub_server import local_hub, start_corral  # noqa: F401  (local_hub is a fixture)

REPO = "hostile/Tiny-GGUF"
FILE = "tiny.Q8_0.gguf"
MiB = 1 << 20


@pytest.fixture
def hub(local_hub, tiny_model):  # noqa: F811
    local_hub.add_repo(REPO)
    local_hub.add_file(REPO, FILE, tiny_model)
    return local_hub


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a child, killed if it outlives `timeout`."""
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


def one_clean_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("corral: ") and "Traceback" not in err, err
    return lines[0]


def queue_states(home: Path) -> dict[str, str]:
    return {j["filename"]: j["state"] for j in json.loads((home / "downloads" / "queue.json").read_text())["jobs"]}


# -- stalls --------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["metadata HEAD", "header Range GET"])
def test_pull_survives_a_120_s_stall_during_the_header_check(hub, tmp_path, tiny_model, where):
    """Done means: the hub stalls once for 120 s during the header check; `corral models pull`
    still finishes within 90 s and the file verifies (the client's 15 s timeout, a retry)."""
    if where == "metadata HEAD":
        hub.set_faults(REPO, FILE, stall_after=0, stall_seconds=120, stall_methods=("HEAD",))
    else:
        hub.set_faults(REPO, FILE, stall_after=0, stall_seconds=120, applies_to="header")
    began = time.monotonic()
    code, out, err = finish(start_corral(hub, tmp_path, "models", "pull", REPO, FILE), timeout=90)
    took = time.monotonic() - began
    assert code == 0, err
    assert f"{REPO}/{FILE}: {hub.url} stopped sending data (timed out) — retrying in 2 s (attempt 2 of 6)" in err
    assert f"{REPO}/{FILE}: llama" in err and "size and sha256 verified" in err
    assert Path(out.strip()).read_bytes() == tiny_model.read_bytes()
    assert took < 90
    print(f"\n[{where}] pull with a 120 s stall finished in {took:.1f} s")


def test_search_and_file_lists_retry_a_stalled_answer(hub):
    said = []
    client = HubClient(endpoint=hub.url, timeout=0.5, on_retry=said.append)
    hub.set_api_fault("/api/models", stall_seconds=30)
    assert [r.repo_id for r in client.search("tiny")] == [REPO]
    hub.set_api_fault(f"/api/models/{REPO}/tree/main", stall_seconds=30)
    assert [f.filename for f in client.list_gguf_files(REPO)] == [FILE]
    assert len(said) == 2 and all("stopped sending data (timed out) — retrying in 2 s" in s for s in said)


def test_search_says_it_retries_a_failing_hub(hub, tmp_path):
    hub.set_api_fault("/api/models", status=503)
    code, out, err = finish(start_corral(hub, tmp_path, "models", "search", "tiny"))
    assert code == 0 and out.splitlines()[1].split()[0] == REPO, err
    assert err.startswith("corral: Searching the hub for 'tiny': the hub answered HTTP 503 (Service Unavailable); "
                          "try again later — retrying in 2 s (attempt 2 of 6)\n"), err


# -- the data-loss race --------------------------------------------------------------------------

def test_an_import_during_a_pull_of_the_same_name_keeps_both(hub, tmp_path, tiny_model):
    """`corral models import --move` of a different model named FILE succeeds while a pull of
    FILE runs; the pull then finishes under another name: both files survive."""
    size = tiny_model.stat().st_size
    hub.set_faults(REPO, FILE, throttle=150_000, applies_to="transfer")  # ~6 s for the transfer
    other = models.tiny(tmp_path / "elsewhere", name="another-model")
    mine = tmp_path / "mine" / FILE
    mine.parent.mkdir()
    shutil.copy(other, mine)
    imported = mine.read_bytes()

    pull = start_corral(hub, tmp_path, "models", "pull", REPO, FILE)
    try:
        assert hub.wait_for_bytes(REPO, FILE, size + 64 * 1024, timeout=30)  # the header check, then bytes
        code, out, err = finish(start_corral(hub, tmp_path, "models", "import", "--move", str(mine)))
        assert code == 0 and out.startswith("Moved"), err
        code, out, err = finish(pull)
    finally:
        finish(pull, timeout=1) if pull.poll() is None else None
    assert code == 0, err
    assert (tmp_path / "models" / FILE).read_bytes() == imported  # the user's model, untouched
    renamed = tmp_path / "models" / "tiny.Q8_0-2.gguf"
    assert out.strip() == str(renamed) and renamed.read_bytes() == tiny_model.read_bytes()
    assert f"saved as {renamed.name}: a different file named {FILE} is in the models folder" in err
    code, out, err = finish(start_corral(hub, tmp_path, "models", "list", "--json"))
    assert code == 0, err
    assert sorted(Path(m["path"]).name for m in json.loads(out)) == sorted([FILE, renamed.name])


def test_a_file_of_the_same_name_from_another_repository_is_not_already_downloaded(hub, tmp_path, tiny_model):
    other = models.tiny(tmp_path / "other-repo", name="from-elsewhere")
    hub.add_repo("someone/Else-GGUF")
    hub.add_file("someone/Else-GGUF", FILE, other)
    code, first, err = finish(start_corral(hub, tmp_path, "models", "pull", "someone/Else-GGUF", FILE))
    assert code == 0, err
    code, out, err = finish(start_corral(hub, tmp_path, "models", "pull", REPO, FILE))
    assert code == 0 and "Already downloaded" not in out + err, out + err
    assert Path(first.strip()).read_bytes() == other.read_bytes()
    assert Path(out.strip()).name == "tiny.Q8_0-2.gguf" and Path(out.strip()).read_bytes() == tiny_model.read_bytes()
    # Pulled again: now it is already downloaded (this queue fetched it from this repository).
    code, again, err = finish(start_corral(hub, tmp_path, "models", "pull", REPO, FILE))
    assert code == 0 and again.strip() == f"Already downloaded: {out.strip()}", again + err


def test_the_same_file_already_in_the_models_folder_is_recognised_by_its_sha256(hub, tmp_path, tiny_model):
    (tmp_path / "models").mkdir()
    shutil.copy(tiny_model, tmp_path / "models" / FILE)  # put there by hand: no record of it
    code, out, err = finish(start_corral(hub, tmp_path, "models", "pull", REPO, FILE, "--no-check"))
    assert code == 0 and out.strip() == f"Already downloaded: {tmp_path / 'models' / FILE}", out + err
    assert [r for r in hub.file_requests(REPO, FILE, "GET")] == []  # nothing fetched
    assert sorted(p.name for p in (tmp_path / "models").glob("*.gguf")) == [FILE]


# -- two pulls of one file -----------------------------------------------------------------------

def second_pull_waiting(hub, tmp_path, tiny_model):
    """A first pull transferring slowly, and a second pull of the same file that says it waits."""
    size = tiny_model.stat().st_size
    hub.set_faults(REPO, FILE, throttle=200_000, applies_to="transfer")  # ~4 s
    first = start_corral(hub, tmp_path, "models", "pull", REPO, FILE)
    assert hub.wait_for_bytes(REPO, FILE, size + 64 * 1024, timeout=30)
    second = start_corral(hub, tmp_path, "models", "pull", REPO, FILE)
    line = second.stderr.readline()
    assert "is being downloaded by another Corral process" in line and "waiting" in line, line
    return first, second


def test_a_second_pull_of_a_file_being_pulled_ends_when_the_first_does(hub, tmp_path, tiny_model):
    first, second = second_pull_waiting(hub, tmp_path, tiny_model)
    code1, out1, err1 = finish(first)
    code2, out2, err2 = finish(second, timeout=20)  # before: never returned
    assert code1 == 0, err1
    assert code2 == 0 and out2.strip() == out1.strip() == str(tmp_path / "models" / FILE), err2
    assert "Downloaded by another Corral process" in err2 and "size and sha256 verified" in err2
    assert len([r for r in hub.file_requests(REPO, FILE) if not (r.range or "-").split("-")[1]]) == 1
    assert queue_states(tmp_path) == {FILE: DONE}


def test_ctrl_c_in_the_waiting_pull_leaves_the_other_download_alone(hub, tmp_path, tiny_model):
    first, second = second_pull_waiting(hub, tmp_path, tiny_model)
    second.send_signal(signal.SIGINT)
    code2, _, err2 = finish(second, timeout=20)
    assert code2 == 130 and f"Stopped waiting; the other Corral process goes on downloading {FILE}" in err2
    code1, out1, err1 = finish(first)
    assert code1 == 0 and Path(out1.strip()).read_bytes() == tiny_model.read_bytes(), err1
    assert queue_states(tmp_path) == {FILE: DONE}


def test_a_stale_process_never_sets_a_finished_job_back(hub, tmp_path, tiny_model):
    """A manager that last saw the job downloading in another process is told to pause it after
    that process finished it (the old Ctrl+C path): the job stays done, here and on disk."""
    hub.set_faults(REPO, FILE, throttle=400_000, applies_to="transfer")
    pull = start_corral(hub, tmp_path, "models", "pull", REPO, FILE)
    try:
        assert hub.wait_for_bytes(REPO, FILE, tiny_model.stat().st_size + 64 * 1024, timeout=30)
        stale = DownloadManager(tmp_path / "models", tmp_path / "downloads" / "queue.json",
                                HubClient(endpoint=hub.url))
        [job] = stale.jobs()
        assert job.state == DOWNLOADING
        with pytest.raises(DownloadError, match="being downloaded by another Corral process"):
            stale.pause(job.id)  # while it runs there: refused, and nothing written
        assert finish(pull)[0] == 0
    finally:
        finish(pull, timeout=1) if pull.poll() is None else None
    stale.pause(job.id)  # it finished meanwhile, and this manager has not looked
    assert stale.get(job.id).state == DONE
    assert queue_states(tmp_path) == {FILE: DONE}


# -- a disk that fills -----------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs (root only); skipped with the reason where it cannot be mounted."""
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a small tmpfs needs root and mount(8) (runs in CI as root)")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Another program takes every byte left on `disk`."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(bytes(256 * 1024))
                f.flush()
        except OSError:
            pass
    return filler


def test_a_disk_that_fills_during_a_download_pauses_it_and_the_state_still_arrives(hub, small_disk):
    data = os.urandom(4 * MiB)
    hub.add_file(REPO, "big.gguf", data)
    hub.set_faults(REPO, "big.gguf", throttle=2 * MiB)
    events = queue.Queue()
    manager = DownloadManager(small_disk / "models", small_disk / "downloads" / "queue.json",
                              HubClient(endpoint=hub.url), on_event=events.put, check_headers=False,
                              progress_interval=0.02)
    try:
        job = manager.enqueue(REPO, "big.gguf")
        manager.start()
        while events.get(timeout=30).job.bytes_done < MiB:  # the transfer is under way
            pass
        filler = fill(small_disk)
        paused = manager.wait(job.id, timeout=30)  # before: the thread died saving, this timed out
        assert paused.state == PAUSED, paused.message
        assert "The disk is full" in paused.message and "is kept" in paused.message
        assert not manager.runs(job.id)
        while (last := events.get(timeout=10)).kind != "state" or last.job.state != PAUSED:
            pass  # (the event follows wait()'s wake-up) -- what the window is sent:
        assert last.job.message == paused.message
        [note] = manager.notices
        assert "could not be saved (the disk is full)" in note and "the downloads go on" in note
        assert 0 < paused.bytes_done < len(data)

        filler.unlink()  # room again
        hub.clear_faults()
        manager.resume(job.id)
        done = manager.wait(job.id, {DONE, FAILED}, timeout=30)
    finally:
        manager.shutdown()
    assert done.state == DONE, done.message
    assert Path(done.path).read_bytes() == data
    assert queue_states(small_disk) == {"big.gguf": DONE}  # saved once there was room again


# -- answers without the usual headers -----------------------------------------------------------

@pytest.mark.parametrize("cdn", [False, True], ids=["hub", "redirected"])
def test_a_hub_answer_with_neither_size_nor_sha256_says_what_was_checked(tmp_path, tiny_model, cdn,
                                                                         monkeypatch):
    from app.testing.hub_server import LocalHub

    with LocalHub(cdn=cdn) as hub:
        hub.add_repo(REPO)
        hub.add_file(REPO, FILE, tiny_model)
        hub.set_faults(REPO, FILE, bare=True)
        meta = HubClient(endpoint=hub.url).file_metadata(REPO, FILE)
        assert (meta.size, meta.sha256, meta.etag) == (None, None, None)
        code, out, err = finish(start_corral(hub, tmp_path, "models", "pull", REPO, FILE))
    assert code == 0 and "Traceback" not in err, err
    assert "sha256 verified" not in err
    assert ("NOT verified against the hub (it gave neither size nor sha256); only the GGUF structure was "
            "checked") in err
    assert Path(out.strip()).read_bytes() == tiny_model.read_bytes()


def test_a_cut_short_model_without_size_or_sha256_is_not_installed(local_hub, tmp_path, tiny_model):  # noqa: F811
    local_hub.add_repo(REPO)
    local_hub.add_file(REPO, FILE, tiny_model.read_bytes()[:-1000])  # the hub's copy is cut short
    local_hub.set_faults(REPO, FILE, bare=True)
    code, out, err = finish(start_corral(local_hub, tmp_path, "models", "pull", REPO, FILE, "--no-check"))
    assert code == 1 and out == ""
    line = one_clean_line(err.split("\n", err.count("\n") - 1)[-1])
    assert f"{FILE} failed verification: it is not a whole GGUF model" in line and "removed" in line
    assert not list((tmp_path / "models").glob("*.gguf"))
    assert not any((tmp_path / "models" / ".partial").iterdir())


def test_a_hub_answer_with_a_size_but_no_sha256_is_size_checked(local_hub, tmp_path, tiny_model):  # noqa: F811
    local_hub.add_repo(REPO)
    local_hub.add_file(REPO, FILE, tiny_model, lfs=False)  # a git file: its ETag is no sha256
    code, out, err = finish(start_corral(local_hub, tmp_path, "models", "pull", REPO, FILE))
    assert code == 0, err
    assert "size checked and the GGUF structure read; NOT verified byte for byte (the hub gave no sha256)" in err
    assert "sha256 verified" not in err and Path(out.strip()).read_bytes() == tiny_model.read_bytes()


# -- file names --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, words", [
    (".hidden.gguf", "a hidden file"),
    ("notes.txt", "GGUF models only"),
    (".", "not a file in the repository"),
    ("sub/", "not a file in the repository"),
    ("../escape.gguf", "not a file in the repository"),
    ("sub/../../escape.gguf", "not a file in the repository"),
    ("a\\b.gguf", "hub paths use '/'"),
    ("what?.gguf", "cannot be a file on every system"),
    ("bell\x07\x1b[2J.gguf", "control characters"),
    (".gguf", "GGUF models only"),
])
def test_pull_refuses_a_file_name_it_cannot_keep(hub, tmp_path, name, words):
    code, out, err = finish(start_corral(hub, tmp_path, "models", "pull", REPO, name))
    line = one_clean_line(err)
    assert code == 1 and out == "" and words in line, line
    assert "\x1b" not in line and "\x07" not in line  # shown escaped, never raw
    assert "Already downloaded" not in out + err
    assert [r for r in hub.requests if r.filename is not None] == []  # refused before any request
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_a_nul_in_a_file_name_is_refused_before_it_is_queued(hub, tmp_path):
    manager = DownloadManager(tmp_path / "models", tmp_path / "queue.json", HubClient(endpoint=hub.url))
    with pytest.raises(DownloadError, match=r"'bad\\x00name.gguf': a file name with control characters"):
        manager.enqueue(REPO, "bad\x00name.gguf")
    assert manager.jobs() == [] and hub.requests == []


def test_a_saved_job_with_a_hostile_file_name_is_left_out_of_the_queue(hub, tmp_path):
    queue_file = tmp_path / "downloads" / "queue.json"
    queue_file.parent.mkdir()
    good = {"id": "a1", "repo_id": REPO, "filename": FILE, "state": "queued"}
    queue_file.write_text(json.dumps({"version": 1, "jobs": [
        good, {"id": "b2", "repo_id": REPO, "filename": "x\u0000.gguf", "state": "downloading"},
        {"id": "c3", "repo_id": REPO, "filename": "../../outside.gguf", "state": "queued"}]}))
    manager = DownloadManager(tmp_path / "models", queue_file, HubClient(endpoint=hub.url))  # before: ValueError
    try:
        assert [j.id for j in manager.jobs()] == ["a1"]
        [note] = manager.notices
        assert "2 entries that could not be read were left out" in note and "control characters" in note
        manager.start()
        assert manager.wait("a1", timeout=30).state == DONE
    finally:
        manager.shutdown()
    assert not (tmp_path / "outside.gguf").exists()


# -- malformed listings --------------------------------------------------------------------------------

TREE = f"/api/models/{REPO}/tree/main"
GOOD = {"type": "file", "path": "good.Q4_0.gguf", "size": 1234, "lfs": {"oid": "a" * 64, "size": 1234}}


@pytest.mark.parametrize("body, shows", [
    ({"not": "a list"}, "the hub's file list could not be read (a list of files was expected, not dict)"),
    ("just text", "the hub's file list could not be read (a list of files was expected, not str)"),
    (b"\xff\xfe not JSON", "the hub's answer is not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "the hub's answer is not valid JSON"),
    (b"", "the hub's answer is not valid JSON"),
    ([1, "x", None, [], {"type": "file"}], "(no .gguf files)"),
    ([{"type": "file", "path": 5, "size": "big"}, {"path": "a.gguf", "size": -1},
      {"type": "file", "path": "b.gguf", "size": True}, {"type": "file", "path": "c.gguf", "lfs": "x"}],
     "(no .gguf files)"),
    ([{"type": "file", "path": "../up.gguf", "size": 1}, {"type": "file", "path": "nul\u0000.gguf", "size": 1},
      {"type": "file", "path": ".hidden.gguf", "size": 1}, {"type": "file", "path": "esc\u001b[2J.gguf", "size": 1},
      GOOD], "  good.Q4_0.gguf  1.23 kB"),
    ([{"type": "file", "path": "odd-sha.gguf", "size": 10, "lfs": {"oid": ["no"], "size": 10}}],
     "  odd-sha.gguf  10 B"),
])
def test_search_files_with_a_malformed_file_list(hub, tmp_path, body, shows):
    hub.set_api_answer(TREE, body)
    code, out, err = finish(start_corral(hub, tmp_path, "models", "search", "tiny", "--files"))
    assert code == 0 and "Traceback" not in err, err
    assert out.splitlines()[1].split()[0] == REPO and f"{REPO}:" in out
    assert shows in out, out
    assert "\x1b" not in out and "\x00" not in out


@pytest.mark.parametrize("body, code, shows", [
    ({"models": []}, 1, "the hub's answer could not be read (a list of repositories was expected, not dict)"),
    (b"<html>busy</html>", 1, "the hub's answer is not valid JSON"),
    ([{"id": "esc\u001b[31m/x"}, {"id": 7}, "text", {"id": "ok/Fine-GGUF", "downloads": "lots", "likes": -3,
      "lastModified": "yesterday", "tags": "gguf"}], 0, "ok/Fine-GGUF  0          0      -"),
])
def test_search_with_a_malformed_answer(hub, tmp_path, body, code, shows):
    hub.set_api_answer("/api/models", body)
    got, out, err = finish(start_corral(hub, tmp_path, "models", "search", "tiny"))
    assert got == code
    if code:
        assert shows in one_clean_line(err)
    else:
        assert shows in out and "\x1b" not in out and "Traceback" not in err, out + err
