"""A damaged library.json or model_settings.json is said in the window (issue 14): "user data is
set aside with a message, never lost; a cache is rebuilt silently".

Both files are the user's data (app/core/library_files.REGISTRY_FILE and
app/core/settings.MODEL_SETTINGS_FILE are not `cache=True` schemas): a file that cannot be used
at all is renamed to `NAME.damaged-YYYYmmdd-HHMMSS` with its bytes and the default is used; a
file with some unusable entries is set aside the same way and the rest written back. Either way
a notice floats over the screens naming the file, what was wrong and where the original went.
The one cache among them, cache/inspect-cache.json (INSPECT_CACHE, `cache=True`), is rebuilt
without a word.

The window is started the way `corral gui` starts it (`app.gui.app.create_window`) on a real
CORRAL_HOME holding a generated model; pytest-qt, offscreen."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import pytest

from app.core import statefile
from app.testing.chat_screens import set_knobs

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

START_TIMEOUT_MS = 10_000  # "the window opens within seconds"
MODEL = "llama-here"
DATED = r"\.damaged-\d{8}-\d{6}(-\d+)?"

# How each file ends its message when it was set aside whole (the schema's `then`).
LIBRARY_THEN = ("the library was listed again from the models folder (linked models must be "
                "linked again; the set-aside file names them)")
SETTINGS_THEN = "every model starts again from the default settings"
NOT_UTF8 = b"\xff\xfe" + os.urandom(2048)  # 0xff can never start UTF-8: always "not UTF-8"


@pytest.fixture
def start(start, caplog, capfd):
    """tests/conftest.py's start(), and afterwards: nothing was logged as an error and no
    traceback reached stderr."""
    statefile.take_notices()  # another test's leftovers are not this window's notices
    caplog.set_level(logging.INFO)
    yield start
    logged = [r for when in ("setup", "call", "teardown") for r in caplog.get_records(when)]
    errors = [r.getMessage() for r in logged if r.levelno >= logging.ERROR]
    assert errors == [], errors
    err = capfd.readouterr().err
    assert "Traceback" not in err, err


@pytest.fixture
def with_model(home, tiny_model) -> Path:
    """A generated model in the models folder, for the Library to list."""
    (home / "models").mkdir(parents=True, exist_ok=True)
    path = home / "models" / f"{MODEL}.gguf"
    shutil.copyfile(tiny_model, path)
    return path


@pytest.fixture
def linked_model(tmp_path, tiny_model) -> Path:
    """A generated model outside the models folder (a linked model is only in library.json)."""
    (tmp_path / "elsewhere").mkdir()
    path = tmp_path / "elsewhere" / "linked.gguf"
    shutil.copyfile(tiny_model, path)
    return path


def write(path: Path, data: bytes) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def aside(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".damaged-*"))


def the_notice(window, qtbot, path: Path) -> str:
    """The one notice naming `path`, shown over the screens (it may come from the library's
    background scan, just after start-up)."""
    qtbot.waitUntil(lambda: any(str(path) in n for n in window.notices()), timeout=START_TIMEOUT_MS)
    [text] = [n for n in window.notices() if str(path) in n]
    [banner] = [b for b in window._notices if b.text.text() == text]
    assert banner.isVisible() and window.notice_box.isVisible()  # on screen, not only listed
    return text


def kept_whole(path: Path, original: bytes) -> Path:
    """The one set-aside copy of `path`: a dated name beside it, its bytes exactly the original."""
    [kept] = aside(path)
    assert re.fullmatch(re.escape(path.name) + DATED, kept.name), kept.name
    assert kept.read_bytes() == original
    return kept


def start_damaged(start, qtbot, path: Path, content: bytes):
    """(window, its notice about `path`, the set-aside copy): `path` holds `content` (a user's
    file, damaged) when the window starts."""
    write(path, content)
    window = start()
    notice = the_notice(window, qtbot, path)
    return window, notice, kept_whole(path, content)


def library_ids(window, qtbot, *ids: str) -> list[str]:
    """The Library screen's installed models, once it lists `ids`."""
    screen = window.show_screen("library")
    qtbot.waitUntil(lambda: set(ids) <= set(screen.installed_ids()), timeout=START_TIMEOUT_MS)
    assert window.current_screen() == "library"
    return sorted(screen.installed_ids())


def registry(home: Path) -> dict:
    return json.loads((home / "library.json").read_text(encoding="utf-8"))["models"]


def saved_settings(home: Path) -> dict:
    return json.loads((home / "model_settings.json").read_text(encoding="utf-8"))["models"]


def save_knobs_in_the_window(window, qtbot, home: Path, **knobs) -> None:
    """Change the model's knobs in the chat, as a person would: they are remembered as its
    settings (written by the chat's settings thread) — the file can be saved again."""
    window.chat_with(MODEL, "")
    screen = window.chat_screen
    qtbot.waitUntil(lambda: screen.session.model() is not None, timeout=START_TIMEOUT_MS)
    assert screen.session.model().id == MODEL
    set_knobs(screen, **knobs)
    qtbot.waitUntil(lambda: (home / "model_settings.json").exists()
                    and saved_settings(home).get(MODEL, {}).get("sampling") == knobs,
                    timeout=START_TIMEOUT_MS)


# --------------------------------------------------------------------------- library.json

@pytest.mark.parametrize("content, reason", [
    (NOT_UTF8, "is not UTF-8 text (byte 0xff at offset 0)"),
    (b'[{"llama-here": {"kind": "folder", "path": "llama-here.gguf"}}]',
     "holds a list where an object is expected"),
    (b'{"version": 1, "models": [["llama-here", "llama-here.gguf"]]}',
     "models must be an object, not a list"),
], ids=["random-bytes", "a-list", "models-a-list"])
def test_an_unusable_library_json_is_set_aside_said_and_listed_again(
        start, home, with_model, linked_model, qtbot, content, reason):
    path = home / "library.json"
    window, notice, kept = start_damaged(start, qtbot, path, content)
    assert notice == f"{path}: {reason}; it was kept as {kept.name} and {LIBRARY_THEN}"
    # Listed again from the models folder: the model there is in the Library and the new file.
    assert library_ids(window, qtbot, MODEL) == [MODEL]
    assert registry(home) == {MODEL: {"kind": "folder", "path": f"{MODEL}.gguf"}}
    assert kept.read_bytes() == content  # writing the new registry did not touch it


def test_a_library_json_entry_of_the_wrong_type_is_left_out_and_the_rest_kept(
        start, home, with_model, linked_model, qtbot):
    path = home / "library.json"
    original = json.dumps({"version": 1, "models": {
        MODEL: {"kind": "folder", "path": f"{MODEL}.gguf"},
        "my-linked": {"kind": "linked", "path": str(linked_model)},
        "broken": 42,
    }}).encode()
    window, notice, kept = start_damaged(start, qtbot, path, original)
    assert notice == (f"{path}: an entry that could not be read was left out (model 'broken': "
                      f"its entry must be an object, not a number); the rest was kept, and the "
                      f"file as it was is kept as {kept.name}")
    # The rest was kept: the linked model (known only from this file) is still listed.
    assert library_ids(window, qtbot, MODEL, "my-linked") == [MODEL, "my-linked"]
    assert registry(home) == {MODEL: {"kind": "folder", "path": f"{MODEL}.gguf"},
                              "my-linked": {"kind": "linked", "path": str(linked_model)}}


# --------------------------------------------------------------------------- model_settings.json

@pytest.mark.parametrize("content, reason", [
    (NOT_UTF8, "is not UTF-8 text (byte 0xff at offset 0)"),
    (b'[{"llama-here": {"context": 2048}}]', "holds a list where an object is expected"),
    (b'{"version": 1, "models": "llama-here"}', "models must be an object, not text"),
], ids=["random-bytes", "a-list", "models-text"])
def test_an_unusable_model_settings_json_is_set_aside_said_and_can_be_saved_again(
        start, home, with_model, qtbot, content, reason):
    path = home / "model_settings.json"
    window, notice, kept = start_damaged(start, qtbot, path, content)
    assert notice == f"{path}: {reason}; it was kept as {kept.name} and {SETTINGS_THEN}"
    assert not path.exists()  # the default is used; nothing is written until a change
    assert library_ids(window, qtbot, MODEL) == [MODEL]
    save_knobs_in_the_window(window, qtbot, home, temperature=0.25)
    assert saved_settings(home) == {MODEL: {"sampling": {"temperature": 0.25}}}
    assert aside(path) == [kept] and kept.read_bytes() == content


@pytest.mark.parametrize("entry, problem", [
    ('"fast"', "its settings must be an object, not text"),
    ('{"context": "big"}', "context must be a whole number ≥ 64, not 'big'"),
], ids=["entry-text", "field-text"])
def test_a_model_settings_entry_of_the_wrong_type_is_left_out_and_the_rest_kept(
        start, home, with_model, qtbot, entry, problem):
    path = home / "model_settings.json"
    original = (f'{{"version": 1, "models": {{"{MODEL}": {entry}, '
                f'"other-model": {{"context": 1024, "template": "chatml"}}}}}}').encode()
    window, notice, kept = start_damaged(start, qtbot, path, original)
    assert notice == (f"{path}: an entry that could not be read was left out (model "
                      f"'{MODEL}': {problem}); the rest was kept, and the file as it was is kept "
                      f"as {kept.name}")
    # The usable part was written in its place: the other model's settings are not lost.
    assert saved_settings(home) == {"other-model": {"context": 1024, "template": "chatml"}}
    assert library_ids(window, qtbot, MODEL) == [MODEL]
    save_knobs_in_the_window(window, qtbot, home, temperature=0.25)
    assert saved_settings(home) == {"other-model": {"context": 1024, "template": "chatml"},
                                    MODEL: {"sampling": {"temperature": 0.25}}}
    assert aside(path) == [kept] and kept.read_bytes() == original


# --------------------------------------------------------------------------- the cache

@pytest.mark.parametrize("content", [
    NOT_UTF8, b"[1, 2, 3]", b'{"version": 1, "files": {"x": "not an entry"}}',
], ids=["random-bytes", "a-list", "entry-text"])
def test_a_damaged_inspect_cache_is_rebuilt_silently(start, home, with_model, qtbot, content):
    path = home / "cache" / "inspect-cache.json"
    write(path, content)
    window = start()
    assert library_ids(window, qtbot, MODEL) == [MODEL]
    # Rebuilt by the scan: valid again, holding the model's header; nothing set aside, no word.
    qtbot.waitUntil(lambda: path.read_bytes() != content, timeout=START_TIMEOUT_MS)
    cache = json.loads(path.read_text(encoding="utf-8"))
    assert cache["version"] == 1
    [(key, entry)] = cache["files"].items()
    assert Path(key).resolve() == with_model.resolve()
    assert entry["size"] == with_model.stat().st_size and entry["error"] is None
    assert entry["header"]["architecture"] == "llama"
    assert aside(path) == []
    assert window.notices() == []
