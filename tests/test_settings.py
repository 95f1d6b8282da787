"""Typed settings and per-model settings, saved atomically."""

from __future__ import annotations

import json
import os
import stat

import pytest

from app.core.paths import get_paths
from app.core.settings import (ModelSettings, ModelSettingsStore, Settings, SettingsError,
                               load_settings, models_dir, save_settings, update_settings,
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


@pytest.mark.parametrize("data, message", [
    ({"backend": "tpu"}, "backend must be one of auto, cpu, gpu"),
    ({"gpu_layers": -2}, "gpu_layers must be a whole number ≥ -1"),
    ({"threads": 0}, "threads must be a whole number ≥ 1"),
    ({"offline": "yes"}, "offline must be true or false"),
    ([1, 2], "must hold a JSON object"),
])
def test_bad_values_name_the_file_and_the_field(data, message):
    path = get_paths().settings_file
    path.write_text(json.dumps(data))
    with pytest.raises(SettingsError, match=message) as err:
        load_settings()
    assert str(path) in str(err.value)


def test_broken_json_is_reported_not_replaced():
    path = get_paths().settings_file
    path.write_text("{ oops")
    with pytest.raises(SettingsError, match=r"is not valid JSON \(line 1"):
        load_settings()
    assert path.read_text() == "{ oops"
    with pytest.raises(SettingsError):
        save_settings(Settings(theme="neon"))


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
