"""Start-up survives damaged or unusable state (issue 14): the window opens within seconds, says in
the window which file is wrong and what to do, and the rest of the app (the Library) works.

Started the way `corral gui` starts it (`app.gui.app.create_window`), on a real CORRAL_HOME with
real SQLite files; pytest-qt, offscreen."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtWidgets import QPushButton

from app.core.chats import ChatStore
from app.core.settings import Settings, save_settings

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

START_TIMEOUT_MS = 10_000  # "within seconds" (the `start` fixture: tests/conftest.py)


@pytest.fixture
def with_model(home, tiny_model) -> str:
    """A model in the models folder, for the Library to list: its id."""
    (home / "models").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tiny_model, home / "models" / "llama-here.gguf")
    return "llama-here"


def library_lists(window, qtbot, model_id: str) -> None:
    screen = window.show_screen("library")
    qtbot.waitUntil(lambda: model_id in screen.installed_ids(), timeout=START_TIMEOUT_MS)
    assert window.current_screen() == "library"


def chats_problem(window, qtbot) -> str:
    """The chat screen's message about the chats database (it must be shown in the window)."""
    window.show_screen("chat")
    qtbot.waitUntil(lambda: window.chats_problem is not None and window.chats_problem.isVisible(),
                    timeout=START_TIMEOUT_MS)
    return window.chats_problem.text()


def aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".damaged-*"))


def make_chats(path: Path, *titles: str) -> None:
    store = ChatStore(path)
    for title in titles:
        cid = store.create_conversation(title=title, params={"temperature": 0.3}).id
        store.add_message(cid, "user", f"hello from {title}")
    store.close()


# --------------------------------------------------------------------------- the chats database

def test_a_chats_database_from_a_newer_corral_says_update(start, home, with_model, qtbot):
    db = home / "chats.sqlite3"
    make_chats(db, "kept")
    with sqlite3.connect(db) as con:
        con.execute("UPDATE schema_version SET version = 99")
    before = db.read_bytes()
    window = start()
    text = chats_problem(window, qtbot)
    assert str(db) in text and "newer Corral" in text and "update Corral" in text
    # Nothing to set aside: the file is fine, only newer; it is left exactly as it was.
    assert window.chats_problem.findChild(QPushButton, "set-aside-button").isHidden()
    library_lists(window, qtbot, with_model)
    window.close()
    assert db.read_bytes() == before and aside(db) == []


def test_a_damaged_chats_database_is_set_aside_only_when_the_user_agrees(start, home, with_model,
                                                                         qtbot):
    db = home / "chats.sqlite3"
    garbage = os.urandom(8192)
    db.write_bytes(garbage)
    window = start()
    text = chats_problem(window, qtbot)
    assert str(db) in text and "damaged" in text
    assert db.read_bytes() == garbage and aside(db) == []  # nothing done without asking
    library_lists(window, qtbot, with_model)

    window.show_screen("chat")
    button = window.chats_problem.findChild(QPushButton, "set-aside-button")
    assert button.isVisible() and "new" in button.text().lower()
    button.click()
    qtbot.waitUntil(lambda: window.chat_screen is not None, timeout=START_TIMEOUT_MS)
    [kept] = aside(db)
    assert kept.read_bytes() == garbage  # the user's file, byte for byte, under a dated name
    # The chat screen takes the problem's place (the problem page stays built, hidden).
    assert window._chat_slot.currentWidget() is window.chat_screen
    assert window.chat_screen.isVisible() and not window.chats_problem.isVisible()
    assert ChatStore(db).count() == 0
    # The window says where the old file went.
    assert any(kept.name in notice for notice in window.notices())


def test_a_chats_database_missing_a_table_is_named_as_damaged(start, home, with_model, qtbot):
    db = home / "chats.sqlite3"
    make_chats(db, "one")
    with sqlite3.connect(db) as con:
        con.execute("DROP TABLE message")
    window = start()
    text = chats_problem(window, qtbot)
    assert str(db) in text and "damaged" in text and "message" in text
    library_lists(window, qtbot, with_model)


def test_one_bad_params_row_does_not_hide_the_other_conversations(start, home, qtbot):
    db = home / "chats.sqlite3"
    make_chats(db, "first", "second", "third")
    with sqlite3.connect(db) as con:
        con.execute("UPDATE conversation SET params = 'not json{' WHERE title = 'second'")
        con.execute("UPDATE conversation SET options = '[1, 2]' WHERE title = 'third'")
    window = start()
    qtbot.waitUntil(lambda: window.chat_screen is not None, timeout=START_TIMEOUT_MS)
    listed = window.chat_screen.conversations.list
    assert sorted(listed.item(i).text() for i in range(listed.count())) == ["first", "second", "third"]
    second = next(c for c in window.chat_store.conversations() if c.title == "second")
    assert second.params == {}  # what could not be read counts as "no choice made"
    window.chat_screen.open_conversation(second.id)
    assert window.chat_screen.current_conversation_id() == second.id
    assert [m.content for m in window.chat_store.messages(second.id)] == ["hello from second"]


def test_chats_database_is_private(start, home, qtbot):
    window = start()
    qtbot.waitUntil(lambda: window.chat_screen is not None, timeout=START_TIMEOUT_MS)
    assert (home / "chats.sqlite3").stat().st_mode & 0o777 == 0o600


# --------------------------------------------------------------------------- settings and others

def test_settings_json_of_random_bytes_starts_with_the_defaults_and_says_so(start, home,
                                                                              with_model, qtbot):
    home.mkdir(parents=True, exist_ok=True)
    garbage = b"\xff\xfe" + os.urandom(2000)
    (home / "settings.json").write_bytes(garbage)
    window = start()
    assert window.settings.backend == "auto" and window.settings.context_size == 4096
    notices = window.notices()
    assert any(str(home / "settings.json") in n and "default" in n for n in notices), notices
    # The user's file is not lost: it is set aside (or left) with its bytes.
    kept = aside(home / "settings.json") or [home / "settings.json"]
    assert kept[0].read_bytes() == garbage
    library_lists(window, qtbot, with_model)


@pytest.mark.parametrize("name, content", [
    ("library.json", b"\x00\x01 not json at all \xff"),
    ("model_settings.json", b"[1, 2, 3]"),
    ("cache/inspect-cache.json", b'{"version": "x", "entries": [[[[[]]]]]}'),
])
def test_odd_state_files_do_not_stop_the_window(start, home, with_model, qtbot, name, content):
    path = home / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    window = start()
    qtbot.waitUntil(lambda: window.chat_screen is not None, timeout=START_TIMEOUT_MS)
    library_lists(window, qtbot, with_model)


# --------------------------------------------------------------------------- a read-only or full folder

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def spoil_home(home):
    """spoil_home("read-only" | "full"): `home` can no longer be written (spoil_home.mend(how)
    undoes it). As root (who ignores folder permissions) a small tmpfs is mounted there first,
    remounted read-only or filled up; otherwise the folders are made read-only ("full" needs
    root)."""
    home.mkdir(parents=True, exist_ok=True)
    if AS_ROOT:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs",
                               str(home)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"running as root and cannot mount a tmpfs: {done.stderr.strip()}")

    def spoil(how: str) -> None:
        if how == "full":
            if not AS_ROOT:
                pytest.skip("filling a disk needs a tmpfs of its own, which needs root")
            with open(home / "filler", "wb", buffering=0) as fh:
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                except OSError:  # ENOSPC: full
                    pass
        elif AS_ROOT:
            subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
        else:
            for folder in [home, *(p for p in home.rglob("*") if p.is_dir())]:
                folder.chmod(0o555)

    def mend(how: str) -> None:
        if how == "full":
            (home / "filler").unlink()
        elif AS_ROOT:
            subprocess.run(["mount", "-o", "remount,rw", str(home)], check=True)
        else:
            for folder in [home, *(p for p in home.rglob("*") if p.is_dir())]:
                folder.chmod(0o755)

    spoil.mend = mend
    yield spoil
    if AS_ROOT:
        subprocess.run(["umount", "-l", str(home)], check=False)
    else:
        for folder in [home, *(p for p in home.rglob("*") if p.is_dir())]:
            folder.chmod(0o755)


@pytest.mark.parametrize("how, had_chats, why, hint", [
    ("read-only", False, "read-only file system" if AS_ROOT else "permission denied",
     "the folder {home} is read-only: make it writable"),
    ("read-only", True, "unable to open database file",
     "the folder {home} is read-only: make it writable"),
    ("full", False, "database or disk is full",
     "free some space on the disk that holds {home}"),
])
def test_a_read_only_or_full_data_folder(spoil_home, start, home, tiny_model, qtbot, tmp_path,
                                         how, had_chats, why, hint):
    # The models folder is set to one outside `home`, so that it outlives the mount.
    (tmp_path / "models").mkdir()
    shutil.copyfile(tiny_model, tmp_path / "models" / "llama-here.gguf")
    save_settings(Settings(models_dir=str(tmp_path / "models")))
    if had_chats:
        make_chats(home / "chats.sqlite3", "kept")
    spoil_home(how)
    window = start()
    text = chats_problem(window, qtbot)
    assert text == (f"Cannot open the chats database {home / 'chats.sqlite3'} ({why}); "
                    f"{hint.format(home=home)}, then try again")
    library_lists(window, qtbot, "llama-here")
    # Once the folder is fixed, "Try again" opens the conversations (the old ones too).
    spoil_home.mend(how)
    window.show_screen("chat")
    retry = window.chats_problem.findChild(QPushButton, "retry-button")
    assert retry.isVisible()
    retry.click()
    qtbot.waitUntil(lambda: window.chat_screen is not None, timeout=START_TIMEOUT_MS)
    assert [c.title for c in window.chat_store.conversations()] == (["kept"] if had_chats else [])
    assert not window.chats_problem.isVisible()


def test_start_up_through_corral_gui_survives_a_damaged_chats_database(home, tmp_path):
    """The shipped command (not a window built by the test): it shows the window and quits."""
    home.mkdir(parents=True)
    (home / "chats.sqlite3").write_bytes(os.urandom(4096))
    (home / "settings.json").write_bytes(os.urandom(512))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "CORRAL_HOME": str(home)}
    proc = subprocess.run([sys.executable, "-m", "app", "gui", "--quit-after-show"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [line.split(" in ")[0] for line in proc.stdout.splitlines()] == ["shown", "ready"]
    assert "Traceback" not in proc.stderr, proc.stderr
