"""README: "Set CORRAL_HOME=/some/folder to keep everything (models, chats, settings, logs) in one
folder instead". Run as users run it (`python -m app`): nothing lands anywhere else."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from app.core import paths


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_every_location_is_under_corral_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "portable"))
    where = dataclasses.asdict(paths.get_paths())
    outside = {name: p for name, p in where.items()
               if not Path(p).is_relative_to(tmp_path / "portable")}
    assert outside == {} and set(where) >= {"models", "chats_db", "logs", "settings_file",
                                            "templates", "cache", "downloads"}


def test_the_command_and_the_window_write_only_under_corral_home(tmp_path, tiny_model):
    home = Path.home()  # this test's own, empty (conftest)
    portable = tmp_path / "portable"
    env = {**os.environ, "CORRAL_HOME": str(portable), "QT_QPA_PLATFORM": "offscreen"}

    def corral(*args: str) -> None:
        r = subprocess.run([sys.executable, "-m", "app", *args], env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, (args, r.stderr)

    corral("models", "import", str(tiny_model))
    corral("chat", tiny_model.stem, "-p", "hi", "--max-tokens", "2")
    corral("servers", "add", "http://127.0.0.1:9", "--name", "box", "--no-check")
    corral("gui", "--quit-after-show")
    assert files_under(home) == []
    written = files_under(portable)
    assert {f"models/{tiny_model.name}", "library.json", "servers.json", "chats.sqlite3",
            "window.ini"} <= set(written), written
