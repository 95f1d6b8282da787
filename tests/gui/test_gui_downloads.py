"""The Downloads screen with the real DownloadManager and a real local hub (app/testing/hub_server):
a download started from the Library appears, progresses, pauses and resumes through its buttons,
completes and lands in the library; failures are shown in words with Retry."""

from __future__ import annotations

import shutil
import threading

import pytest
from PySide6.QtWidgets import QPushButton

from app.core.downloads import DownloadEvent, Job
from app.core.settings import Settings, load_settings, save_settings
from app.gui.downloads.worker import DownloadController
from app.gui.main_window import MainWindow
from app.testing.hub_server import local_hub  # noqa: F401  (a fixture)

REPO = "corral-test/Tiny-Chat-GGUF"
FILE = "tiny-chat.Q8_0.gguf"


@pytest.fixture
def hub(local_hub, tiny_model):  # noqa: F811
    local_hub.add_repo(REPO, downloads=42, likes=7)
    local_hub.add_file(REPO, FILE, tiny_model)
    return local_hub


@pytest.fixture
def window(qtbot, home, hub):
    w = MainWindow(load_settings())
    qtbot.addWidget(w)
    w.show()
    yield w
    hub.clear_faults()
    hub.release_stalls()
    w.close()


def hub_files(library, qtbot, query: str = "tiny-chat", old=None):
    """Search the Hugging Face tab for `query` and open the first repository's file list (a card
    other than `old`, for a search made again); returns the card."""
    library.show_tab("hub")
    library.search.setText(query)
    qtbot.waitUntil(lambda: library.hub_list.count() == 1 and library.hub_list.itemAt(0).widget() is not old,
                    timeout=10000)
    card = library.hub_list.itemAt(0).widget()
    card.show_files.click()
    qtbot.waitUntil(card.show_files.isHidden, timeout=10000)  # (set_files hides it)
    return card


def button(row, name: str) -> QPushButton:
    b = row.findChild(QPushButton, f"{name}-button")
    assert b is not None and b.isVisibleTo(row), f"{name} is not offered in state {row.job.state}"
    return b


def test_a_download_progresses_pauses_resumes_and_completes(window, hub, qtbot, home, tiny_model):
    size = tiny_model.stat().st_size
    # ~14 s for the whole file: time to press Pause (the header check before it is not slowed)
    hub.set_faults(REPO, FILE, throttle=60_000, applies_to="transfer")
    library = window.show_screen("library")
    hub_files(library, qtbot).findChild(QPushButton, "download-button").click()
    assert library.banner.kind == "info" and FILE in library.banner.text.text()

    screen = window.show_screen("downloads")
    qtbot.waitUntil(lambda: len(screen.rows) == 1, timeout=10000)
    row = next(iter(screen.rows.values()))
    assert row.name.text() == FILE and row.repo.text() == REPO
    qtbot.waitUntil(lambda: row.job.state == "downloading" and row.job.bytes_done > 0 and bool(row.speed),
                    timeout=15000)
    assert 0 < row.bar.value() < 1000
    assert "of" in row.figures.text() and "/s" in row.figures.text()

    button(row, "pause").click()
    qtbot.waitUntil(lambda: row.job.state == "paused", timeout=15000)
    assert row.state.text() == "Paused"
    paused_at = row.job.bytes_done
    assert 0 < paused_at < size
    assert (home / "models" / ".partial" / f"{FILE}.part").exists()

    hub.clear_faults()
    button(row, "resume").click()
    qtbot.waitUntil(lambda: row.job.state == "done", timeout=20000)
    assert row.state.text() == "Done"
    assert row.bar.value() == 1000
    assert (home / "models" / FILE).stat().st_size == size
    # Resumed with Range from the partial: the hub did not send the first part twice (the header
    # check's bounded reads aside).
    transfers = [r for r in hub.file_requests(REPO, FILE) if not (r.range or "-").split("-")[1]]
    assert len(transfers) == 2 and sum(r.bytes_sent for r in transfers) < size + paused_at
    # Verified, registered, and shown in the library.
    qtbot.waitUntil(lambda: "tiny-chat.Q8_0" in library.installed_ids(), timeout=10000)
    assert button(row, "remove")


def test_failures_are_shown_in_words_with_retry(window, hub, qtbot):
    controller = window.downloads
    screen = window.show_screen("downloads")
    job = controller.enqueue(REPO, "missing.Q4_K_M.gguf")
    qtbot.waitUntil(lambda: job.id in screen.rows and screen.rows[job.id].job.state == "failed",
                    timeout=15000)
    row = screen.rows[job.id]
    assert row.state.text() == "Failed"
    assert row.message.isVisibleTo(row)
    assert "missing.Q4_K_M.gguf" in row.message.text() and "not found" in row.message.text()
    assert button(row, "retry") and button(row, "cancel")
    button(row, "cancel").click()
    qtbot.waitUntil(lambda: row.job.state == "cancelled")
    button(row, "remove").click()
    qtbot.waitUntil(lambda: job.id not in screen.rows)


def test_cancel_removes_the_partial(window, hub, qtbot, home):
    hub.set_faults(REPO, FILE, throttle=30_000, applies_to="transfer")
    screen = window.show_screen("downloads")
    job = window.downloads.enqueue(REPO, FILE)
    qtbot.waitUntil(lambda: job.id in screen.rows and screen.rows[job.id].job.bytes_done > 0, timeout=15000)
    button(screen.rows[job.id], "cancel").click()
    qtbot.waitUntil(lambda: screen.rows[job.id].job.state == "cancelled", timeout=15000)
    assert not (home / "models" / ".partial" / f"{FILE}.part").exists()


def test_the_queue_comes_back_after_a_restart(home, hub, qtbot):
    hub.set_faults(REPO, FILE, throttle=30_000, applies_to="transfer")
    first = MainWindow(load_settings())
    qtbot.addWidget(first)
    first.show()
    job = first.downloads.enqueue(REPO, FILE)
    qtbot.waitUntil(lambda: any(j.bytes_done > 0 for j in first.downloads.jobs()), timeout=15000)
    first.downloads.pause(job.id)
    qtbot.waitUntil(lambda: first.downloads.manager.get(job.id).state == "paused", timeout=15000)
    first.close()

    again = MainWindow(load_settings())
    qtbot.addWidget(again)
    again.show()
    screen = again.show_screen("downloads")
    qtbot.waitUntil(lambda: job.id in screen.rows, timeout=10000)
    assert screen.rows[job.id].job.state == "paused"
    assert screen.rows[job.id].job.bytes_done > 0
    again.close()


def test_a_pull_in_a_terminal_shows_up_in_the_open_window(window, hub, qtbot, home):
    """`corral models pull` in another process, the window open on the same home folder: its
    job appears on the Downloads screen while it runs and shows done when it is."""
    import os
    import subprocess

    from app.testing.hub_server import corral_command

    hub.set_faults(REPO, FILE, throttle=300_000)  # a few seconds
    screen = window.show_screen("downloads")
    env = {**os.environ, "CORRAL_HOME": str(home), "HF_ENDPOINT": hub.url}
    pull = subprocess.Popen([*corral_command(), "models", "pull", REPO, FILE, "--no-check"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        qtbot.waitUntil(lambda: len(screen.rows) == 1, timeout=20_000)
        [row] = screen.rows.values()
        assert row.job.filename == FILE
        qtbot.waitUntil(lambda: row.job.state == "done", timeout=60_000)
        assert pull.wait(30) == 0, pull.stderr.read()
    finally:
        if pull.poll() is None:
            pull.kill()
            pull.wait()
    assert len(hub.file_requests(REPO, FILE, "GET")) == 1  # fetched by the terminal only


def test_a_damaged_queue_file_is_reported_and_the_window_starts(home, qtbot):
    from app.core.paths import get_paths

    queue_file = get_paths().downloads / "queue.json"
    queue_file.parent.mkdir(parents=True, exist_ok=True)
    queue_file.write_bytes(b"\x00\x01 not json")
    window = MainWindow(load_settings())
    qtbot.addWidget(window)
    window.show()
    try:
        qtbot.waitUntil(lambda: window.downloads.manager is not None, timeout=20_000)
        screen = window.show_screen("downloads")
        shown = screen.banner.text.text()
        assert shown.startswith(f"{queue_file}: is not valid JSON") and "queue.json.damaged-" in shown
        assert screen.banner.isVisibleTo(screen)
        assert screen.rows == {}
    finally:
        window.close()


def test_offline_refuses_downloads_with_a_message(home, hub, qtbot):
    save_settings(Settings(offline=True))
    w = MainWindow(load_settings())
    qtbot.addWidget(w)
    w.show()
    from app.gui.downloads.worker import OfflineError

    with pytest.raises(OfflineError, match="Offline mode is on"):
        w.downloads.enqueue(REPO, FILE)
    assert hub.requests == []
    w.close()


def test_progress_is_coalesced(qtbot, home):
    controller = DownloadController(Settings(), home / "queue.json", interval_ms=50)
    seen = []
    controller.jobChanged.connect(seen.append)
    job = Job(id="j1", repo_id=REPO, filename=FILE, state="downloading", size=1000)

    def worker():  # the manager calls on_event on its own threads
        for done in range(1, 201):
            controller.manager_event(DownloadEvent(Job(**{**job.__dict__, "bytes_done": done}),
                                                   "progress", 1e6, 1.0))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    qtbot.waitUntil(lambda: bool(seen) and seen[-1].job.bytes_done == 200, timeout=3000)
    assert len(seen) <= 3  # 200 progress events, one (or a couple of) view updates
    controller.manager_event(DownloadEvent(Job(**{**job.__dict__, "state": "paused"}), "state"))
    qtbot.waitUntil(lambda: seen[-1].job.state == "paused", timeout=3000)


def test_a_hub_file_whose_header_is_damaged_is_refused_before_the_transfer(window, hub, qtbot, home, tiny_model):
    """The window checks a hub file's header before downloading it, as `corral models pull`
    does (the same code: the download manager's job): the download fails with the reason, only
    the start of the file was read, and nothing lands in the models folder."""
    damaged = bytearray(tiny_model.read_bytes())
    damaged[4:8] = (999).to_bytes(4, "little")  # a GGUF version no reader knows
    hub.add_file(REPO, "damaged.Q8_0.gguf", bytes(damaged))
    library = window.show_screen("library")
    card = hub_files(library, qtbot)
    card.findChildren(QPushButton, "download-button")[0].click()  # files are listed by name: damaged… first

    screen = window.show_screen("downloads")
    qtbot.waitUntil(lambda: len(screen.rows) == 1, timeout=10000)
    [row] = screen.rows.values()
    qtbot.waitUntil(lambda: row.job.state == "failed", timeout=15000)
    assert row.message.text() == (f"Not downloaded: {REPO}/damaged.Q8_0.gguf: unknown GGUF version 999 "
                                  "(versions 2 and 3 are supported)")
    assert button(row, "retry")
    gets = hub.file_requests(REPO, "damaged.Q8_0.gguf", "GET")
    assert gets and all(r.range == "bytes=0-1048575" for r in gets)  # the header only
    assert not (home / "models" / "damaged.Q8_0.gguf").exists()
    assert not (home / "models" / ".partial").exists() or not any((home / "models" / ".partial").iterdir())


def test_a_same_named_model_from_elsewhere_is_not_taken_for_the_hub_file(window, hub, qtbot, home, tmp_path):
    """A different model the user has under the hub file's name: the hub list still offers the
    download, which lands under another name; the user's file is left as it was."""
    from app.testing import models

    mine = models.tiny(tmp_path / "mine", name="not-the-hub-model")
    (home / "models").mkdir(parents=True, exist_ok=True)
    shutil.copy(mine, home / "models" / FILE)
    library = window.show_screen("library")
    first = hub_files(library, qtbot)
    first.findChild(QPushButton, "download-button").click()  # before: "Installed", no button
    screen = window.show_screen("downloads")
    qtbot.waitUntil(lambda: len(screen.rows) == 1, timeout=10000)
    [row] = screen.rows.values()
    qtbot.waitUntil(lambda: row.job.state == "done", timeout=20000)
    assert row.job.path == str(home / "models" / "tiny-chat.Q8_0-2.gguf")
    assert row.message.text().startswith(f"saved as tiny-chat.Q8_0-2.gguf: a different file named {FILE}")
    assert (home / "models" / FILE).read_bytes() == mine.read_bytes()

    window.show_screen("library")
    card = hub_files(library, qtbot, "tiny-chat ", old=first)  # searched again: now downloaded from here
    assert card.findChild(QPushButton, "download-button") is None
