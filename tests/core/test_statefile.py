"""app.core.statefile (one reader, one policy for every JSON state file) and app.core.safetext."""

from __future__ import annotations

import json
import time

import pytest

from app.core import statefile
from app.core.safetext import terminal_safe
from app.core.statefile import Damaged, Schema, expect, keep_items


def _check_names(value, problems):
    data = expect(value, dict)
    return {"names": keep_items(expect(data.get("names", []), list, "names"),
                                lambda n: expect(n, str, "a name"), problems, "name")}


NAMES = Schema(default=lambda: {"names": []}, check=_check_names, then="the list starts empty")


def test_a_missing_file_is_the_default_and_a_good_one_its_value(tmp_path):
    assert statefile.load(tmp_path / "x.json", NAMES) == statefile.Loaded({"names": []})
    (tmp_path / "x.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"names": ["a"]}).encode())
    assert statefile.load(tmp_path / "x.json", NAMES).value == {"names": ["a"]}  # BOM accepted


def test_entries_that_cannot_be_used_are_left_out_and_the_rest_written_back(tmp_path):
    path = tmp_path / "x.json"
    original = json.dumps({"names": ["a", 5, "b", None]}).encode()
    path.write_bytes(original)
    loaded = statefile.load(path, NAMES)
    assert loaded.value == {"names": ["a", "b"]}
    assert loaded.aside.read_bytes() == original
    assert loaded.notice == (f"{path}: 2 entries that could not be read were left out (name 2: a "
                             f"name must be text, not a number; name 4: a name must be text, not "
                             f"null); the rest was kept, and the file as it was is kept as "
                             f"{loaded.aside.name}")
    assert json.loads(path.read_text()) == {"names": ["a", "b"]}
    assert statefile.load(path, NAMES) == statefile.Loaded({"names": ["a", "b"]})  # quiet now


@pytest.mark.parametrize("data, reason", [
    (b"x" * 101, "is too large (101 B; the limit is 100 B)"),
    (b"[" * 6 + b"]" * 6, "is nested too deeply (more than 5 levels)"),
    (b"[" * 100_000, "is nested too deeply (more than 5 levels)"),
    (b"1" * 5000, "is not valid JSON"),
    (b" \n", "is empty"),
    (b'{"names": 1}', "names must be a list, not a number"),
])
def test_bounds_and_shapes(tmp_path, data, reason):
    path = tmp_path / "x.json"
    path.write_bytes(data)
    limit = 100 if reason.startswith("is too large") else 1_000_000
    loaded = statefile.load(path, Schema(default=dict, check=_check_names, max_bytes=limit,
                                         max_depth=5))
    assert loaded.value == {} and loaded.aside.read_bytes() == data and not path.exists()
    assert loaded.notice.startswith(f"{path}: {reason}")
    assert statefile.parse(b"[" * 5 + b"]" * 5, max_depth=5) == [[[[[]]]]]


def test_a_cache_is_rebuilt_silently(tmp_path):
    path = tmp_path / "cache.json"
    path.write_bytes(b"\xff")
    assert statefile.load(path, Schema(cache=True)) == statefile.Loaded({})
    assert path.read_bytes() == b"\xff"          # left for its next write to replace
    assert statefile.write_cache(tmp_path / "not-a-folder" / "c.json", {}) is True
    (tmp_path / "file").write_text("")
    assert statefile.write_cache(tmp_path / "file" / "c.json", {}) is False  # never raises


def test_set_aside_never_replaces_an_earlier_copy(tmp_path):
    path = tmp_path / "x.json"
    now = time.time()
    earlier = {}
    for t in (now, now + 1):  # whichever second the call falls in, its first name is taken
        name = f"x.json.damaged-{time.strftime('%Y%m%d-%H%M%S', time.localtime(t))}"
        (tmp_path / name).write_text(f"earlier {name}")
        earlier[name] = f"earlier {name}"
    path.write_text("now")
    aside = statefile.set_aside(path)
    assert aside.name.endswith("-2") and aside.read_text() == "now" and not path.exists()
    assert {n: (tmp_path / n).read_text() for n in earlier} == earlier


def test_notices_are_told_once_to_every_listener(tmp_path):
    heard: list[str] = []

    def broken(_message):
        raise RuntimeError("a listener that fails must not stop the others")

    statefile.add_listener(broken)
    statefile.add_listener(heard.append)
    try:
        statefile.take_notices()
        (tmp_path / "x.json").write_text("[]")
        for _ in range(2):
            statefile.read(tmp_path / "x.json", NAMES)
            statefile.notify("the same words")
            statefile.notify("the same words")
    finally:
        statefile.remove_listener(broken)
        statefile.remove_listener(heard.append)
    assert len(heard) == 2 and heard[1] == "the same words"
    assert "holds a list where an object is expected" in heard[0]
    assert statefile.take_notices() == heard and statefile.take_notices() == []


def test_names_that_are_not_utf8_round_trip_through_json(tmp_path):
    data = {"caf\udce9.gguf": ["\ud800", "é", "\x1b"]}
    statefile.write_json_atomic(tmp_path / "x.json", data)
    raw = (tmp_path / "x.json").read_bytes()
    assert raw.decode("utf-8") and b"\\udce9" in raw and "é".encode() in raw
    assert statefile.parse_file(tmp_path / "x.json") == data


def test_a_check_that_raises_damaged_sets_the_whole_file_aside(tmp_path):
    def refuse(_value, _problems):
        raise Damaged("is from the future")
    path = tmp_path / "x.json"
    path.write_text("{}")
    loaded = statefile.load(path, Schema(check=refuse, then="it starts again empty"))
    assert loaded.notice == f"{path}: is from the future; it was kept as {loaded.aside.name} " \
                            f"and it starts again empty"


@pytest.mark.parametrize("text, shown", [
    ("llama 7B – Q4 “chat” 日本語", "llama 7B – Q4 “chat” 日本語"),
    ("\x1b]0;owned\x07\x1b[31mred", "\\x1b]0;owned\\x07\\x1b[31mred"),
    ("two\nlines\r\ttab", "two\\nlines\\r\\ttab"),
    ("abc\u202edcba", "abc\\u202edcba"),        # a bidi override
    ("caf\udce9", "caf\\xe9"),                   # a file-name byte that is not UTF-8
    ("lone \ud800", "lone \\ud800"),
])
def test_terminal_safe(text, shown):
    assert terminal_safe(text) == shown and terminal_safe(shown) == shown
