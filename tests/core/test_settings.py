"""Typed settings and per-model settings, saved atomically."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest

from app.core.paths import get_paths
from app.core.settings import (ModelSettings, ModelSettingsStore, Settings, SettingsError,
                               current_settings, load_settings, models_dir, save_settings, update_settings,
                               write_json_atomic)


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path))
    return tmp_path


def test_defaults_when_nothing_was_saved():
    s = load_settings()
    assert s == Settings()
    assert (s.backend, s.gpu_layers, s.threads, s.theme, s.offline, s.hf_token) == ("auto", -1, None, "system", False, None)
    assert s.effective_models_dir() == get_paths().models == models_dir()


def test_round_trip_keeps_unknown_keys_and_is_private(home):
    path = get_paths().settings_file
    path.write_text(json.dumps({"backend": "cpu", "from_the_future": [1, 2]}))
    s = load_settings()
    assert s.backend == "cpu" and s.extra == {"from_the_future": [1, 2]}
    s.hf_token, s.threads, s.models_dir = "hf_secret", 2, str(home / "elsewhere")
    save_settings(s)
    saved = json.loads(path.read_text())
    assert saved["from_the_future"] == [1, 2] and saved["hf_token"] == "hf_secret"
    assert load_settings() == s
    assert models_dir() == home / "elsewhere"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert update_settings(theme="dark").theme == "dark" and load_settings().theme == "dark"


def _aside(path):
    """The one set-aside copy of `path` (NAME.damaged-YYYYmmdd-HHMMSS)."""
    found = [p for p in path.parent.iterdir() if p.name.startswith(path.name + ".damaged-")]
    assert len(found) == 1, found
    assert re.fullmatch(re.escape(path.name) + r"\.damaged-\d{8}-\d{6}", found[0].name)
    return found[0]


@pytest.mark.parametrize("data, message", [
    ({"backend": "tpu"}, "backend must be one of auto, cpu, gpu"),
    ({"gpu_layers": -2}, "gpu_layers must be a whole number ≥ -1"),
    ({"threads": 0}, "threads must be a whole number ≥ 1"),
    ({"offline": "yes"}, "offline must be true or false"),
])
def test_a_bad_value_is_left_out_the_rest_kept_and_the_file_set_aside(data, message):
    path = get_paths().settings_file
    original = json.dumps({**data, "theme": "dark", "hf_token": "hf_x"}).encode()
    path.write_bytes(original)
    with pytest.raises(SettingsError, match=message) as err:
        load_settings()
    aside = _aside(path)
    assert str(path) in str(err.value) and aside.name in str(err.value)
    assert aside.read_bytes() == original                  # the user's file, byte for byte
    assert err.value.settings == Settings(theme="dark", hf_token="hf_x")  # in force now
    assert load_settings() == err.value.settings            # written back without the bad field
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600     # it holds a token


def test_a_list_instead_of_an_object_is_set_aside_and_the_defaults_used():
    path = get_paths().settings_file
    path.write_text("[1, 2]")
    with pytest.raises(SettingsError, match="holds a list where an object is expected") as err:
        load_settings()
    assert str(path) in str(err.value) and err.value.settings == Settings()
    assert _aside(path).read_text() == "[1, 2]" and not path.exists()
    assert load_settings() == Settings() and current_settings() == Settings()


def test_broken_json_is_set_aside_never_replaced():
    path = get_paths().settings_file
    path.write_text("{ oops")
    with pytest.raises(SettingsError, match=r"is not valid JSON \(line 1"):
        load_settings()
    assert _aside(path).read_text() == "{ oops"
    with pytest.raises(SettingsError):
        save_settings(Settings(theme="neon"))


def test_current_settings_tells_the_problem_once_and_goes_on():
    from app.core import statefile
    heard: list[str] = []
    statefile.add_listener(heard.append)
    try:
        path = get_paths().settings_file
        path.write_bytes(b"\xff\xfe{}")
        assert current_settings() == Settings()
        assert current_settings() == Settings()
    finally:
        statefile.remove_listener(heard.append)
    notes = [n for n in statefile.take_notices() if str(path) in n]
    assert len(notes) == 1 and "is not UTF-8 text (byte 0xff at offset 0)" in notes[0]
    assert heard == notes
    assert _aside(path).read_bytes() == b"\xff\xfe{}"


def test_atomic_write_leaves_the_old_file_when_serialising_fails(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_per_model_settings_persist_and_merge(home):
    store = ModelSettingsStore()
    assert store.get("m") == ModelSettings()
    store.set("m", ModelSettings(template="chatml", context=4096, sampling={"temperature": 0.7}))
    store.update("m", gpu_layers=10, sampling={"top_p": 0.9, "temperature": None})
    again = ModelSettingsStore(home / "model_settings.json").get("m")
    assert again == ModelSettings(template="chatml", context=4096, gpu_layers=10, sampling={"top_p": 0.9})
    store.rename("m", "m2")
    assert store.get("m") == ModelSettings() and store.get("m2").template == "chatml"
    store.remove("m2")
    assert store.all() == {}
    with pytest.raises(SettingsError, match="unknown sampling setting 'warmth'"):
        store.update("m", sampling={"warmth": 1})
    with pytest.raises(SettingsError, match="context must be a whole number"):
        store.set("m", ModelSettings(context=0))
