"""Two threads of one process reading the same damaged state file at once (the window's library
scan and its chat, two requests to `corral serve`) set it aside once and say so once: the other
reader gets what the first left in its place, never a false "could not be set aside; move it
away or fix it", and never a second set-aside copy."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.core import statefile
from app.core.settings import MODEL_SETTINGS_FILE

ROUNDS = 40  # without one reader at a time, most rounds fail (measured: 167 of 200)


@pytest.mark.parametrize("content, value", [
    (b"\xff not UTF-8", {"version": 1, "models": {}}),
    (b'{"version": 1, "models": {"a": "x", "b": {"context": 1024}}}',
     {"version": 1, "models": {"b": {"context": 1024}}}),
], ids=["whole-file", "one-entry"])
def test_two_readers_of_one_damaged_file_set_it_aside_once(tmp_path, content, value):
    for n in range(ROUNDS):
        folder = tmp_path / str(n)
        folder.mkdir()
        path = folder / "model_settings.json"
        path.write_bytes(content)
        together = threading.Barrier(2)
        results: list[statefile.Loaded | BaseException] = []

        def read() -> None:
            together.wait(timeout=10)
            try:
                results.append(statefile.load(path, MODEL_SETTINGS_FILE))
            except Exception as exc:  # noqa: BLE001 - the test reports it
                results.append(exc)

        threads = [threading.Thread(target=read) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == [], f"round {n}: {errors}"
        assert [r.value for r in results] == [value, value]
        [kept] = sorted(Path(folder).glob("model_settings.json.damaged-*"))
        assert kept.read_bytes() == content
        assert [r.aside for r in results if r.notice] == [kept]  # said once, by one reader
