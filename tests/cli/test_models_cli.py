"""`corral models list | import | rm | discover`, run as a user would: a subprocess per command."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "app", *args]  # the shipped command, nothing registered here


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("HF_", "HUGGINGFACE_", "OLLAMA_", "XDG_", "LOCALAPPDATA"))}
    e.update(CORRAL_HOME=str(tmp_path / "corral"), HOME=str(tmp_path / "home"),
             PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return e


def corral(env, *args: str, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), env=env, cwd=REPO, stdin=stdin, capture_output=True,
                          text=True, timeout=120)


def test_import_list_and_rm(env, tiny_model, tmp_path):
    src = tmp_path / "elsewhere" / "vicuna-7b-v1.5.Q4_K_M.gguf"
    src.parent.mkdir()
    shutil.copyfile(tiny_model, src)

    r = corral(env, "models", "list")
    assert r.returncode == 0 and "No models yet" in r.stdout

    r = corral(env, "models", "import", str(src))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Copied vicuna-7b-v1.5.Q4_K_M (844 kB, F32)")
    r = corral(env, "models", "import", str(src), "--link", "--name", "linked")
    assert r.returncode == 0 and r.stdout.startswith("Linked linked")

    r = corral(env, "models", "list")
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["ID", "SIZE", "QUANT", "PARAMS", "TEMPLATE", "STATUS"]
    assert lines[1].split()[:5] == ["vicuna-7b-v1.5.Q4_K_M", "844", "kB", "F32", "205K"]
    assert "vicuna-v1.1" in lines[1] and lines[1].endswith("ok")  # template from the catalog
    assert lines[2].endswith("ok, linked")

    r = corral(env, "models", "list", "--json")
    data = json.loads(r.stdout)
    assert [(m["id"], m["kind"], m["status"]) for m in data] == [
        ("vicuna-7b-v1.5.Q4_K_M", "folder", "ok"), ("linked", "linked", "ok")]
    assert data[0]["template"] == "vicuna-v1.1" and data[0]["header"]["block_count"] == 2

    r = corral(env, "models", "rm", "linked")  # no TTY, no --yes
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == "corral: not deleting linked without confirmation: pass --yes"
    r = corral(env, "models", "rm", "linked", "--yes")
    assert r.returncode == 0 and "file stays at" in r.stdout and src.exists()
    r = corral(env, "models", "rm", "nope", "--yes")
    assert r.returncode == 1 and r.stderr.startswith("corral: no model 'nope' in the library")


def test_import_rejects_a_file_that_is_not_gguf(env, tmp_path):
    bad = tmp_path / "weights.gguf"
    bad.write_bytes(b"PK\x03\x04 not a model")
    r = corral(env, "models", "import", str(bad), "--move")
    assert r.returncode == 1 and bad.exists()
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"corral: not imported, not a usable GGUF model: {bad}:")
    r = corral(env, "models", "import", str(bad), "--move", "--link")
    assert r.returncode == 2  # argparse: not allowed together


def tty_rm(env, model_id: str, answer: bytes) -> subprocess.CompletedProcess:
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(command("models", "rm", model_id), env=env, cwd=REPO, stdin=slave,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.write(master, answer)
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_rm_asks_on_a_terminal(env, tiny_model, tmp_path):
    src = tmp_path / "m.gguf"
    shutil.copyfile(tiny_model, src)
    assert corral(env, "models", "import", str(src)).returncode == 0
    models = Path(env["CORRAL_HOME"]) / "models"

    r = tty_rm(env, "m", b"n\n")
    assert r.returncode == 1 and "Delete m (" in r.stderr and "Nothing deleted." in r.stderr
    assert (models / "m.gguf").exists()
    r = tty_rm(env, "m", b"y\n")
    assert r.returncode == 0 and r.stdout.startswith("Deleted m")
    assert not (models / "m.gguf").exists() and src.exists()


def test_discover_lists_and_links(env, tiny_model):
    home = Path(env["HOME"])
    g4a = home / ".local" / "share" / "nomic.ai" / "GPT4All"
    g4a.mkdir(parents=True)
    shutil.copyfile(tiny_model, g4a / "orca-mini-3b.gguf")
    r = corral(env, "models", "discover")
    assert r.returncode == 0 and "gpt4all:orca-mini-3b.gguf" in r.stdout and "GPT4All" in r.stdout
    r = corral(env, "models", "discover", "--add", "gpt4all:orca-mini-3b.gguf")
    assert r.returncode == 0 and r.stdout.startswith("Linked orca-mini-3b")
    data = json.loads(corral(env, "models", "discover", "--json").stdout)
    mine = [d for d in data if d["key"] == "gpt4all:orca-mini-3b.gguf"]
    assert mine[0]["in_library"] == "orca-mini-3b"
    assert not (Path(env["CORRAL_HOME"]) / "models").exists() or \
        not any((Path(env["CORRAL_HOME"]) / "models").iterdir())
    r = corral(env, "models", "discover", "--add", "nothing-like-it")
    assert r.returncode == 1 and "no discovered model" in r.stderr


# Names from outside: bytes that are not UTF-8, a newline, escape sequences (issue 14).
HOSTILE_NAMES = {
    "caf_": os.fsencode("caf") + b"\xe9.gguf",          # Latin-1, not UTF-8
    "two_lines": b"two\nlines.gguf",                   # would break the table
    "_]0;pwned__[31mred": b"\x1b]0;pwned\x07\x1b[31mred.gguf",  # title change, colour
}


def _plant_hostile_names(env, model: Path) -> Path:
    folder = Path(env["CORRAL_HOME"]) / "models"
    folder.mkdir(parents=True)
    for raw in HOSTILE_NAMES.values():
        shutil.copyfile(model, os.path.join(os.fsencode(folder), raw))
    return folder


def test_file_names_that_are_not_utf8_or_hold_control_characters_list_and_delete(env, tiny_model):
    folder = _plant_hostile_names(env, tiny_model)
    r = corral(env, "models", "list")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    lines = r.stdout.splitlines()
    assert len(lines) == 1 + len(HOSTILE_NAMES)                 # one line per model
    assert sorted(line.split()[0] for line in lines[1:]) == sorted(HOSTILE_NAMES)
    assert all(line.endswith("ok") for line in lines[1:])

    data = json.loads(corral(env, "models", "list", "--json").stdout)
    paths = {m["id"]: os.fsencode(m["path"]) for m in data}
    assert {k: os.path.basename(v) for k, v in paths.items()} == HOSTILE_NAMES  # exact bytes
    registry = Path(env["CORRAL_HOME"]) / "library.json"
    assert json.loads(registry.read_bytes().decode("utf-8"))["models"]["caf_"]["path"] == "caf\udce9.gguf"

    r = corral(env, "models", "rm", "caf_", "--yes")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == f"Deleted caf_ ({folder}/caf\\xe9.gguf)\n"
    assert sorted(os.listdir(os.fsencode(folder))) == sorted(
        v for k, v in HOSTILE_NAMES.items() if k != "caf_")
    r = corral(env, "models", "list")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == len(HOSTILE_NAMES)


def test_serve_lists_models_whose_file_names_are_not_utf8(env, tiny_model, monkeypatch):
    import httpx2

    from app.core.library import Library
    from app.core.server import ServeConfig, Server

    monkeypatch.setenv("CORRAL_HOME", env["CORRAL_HOME"])
    folder = _plant_hostile_names(env, tiny_model)
    server = Server(ServeConfig(port=0, threads=1), library=Library(models_dir=folder)).start()
    try:
        for _ in range(2):  # the first request writes the registry, the second reads it back
            r = httpx2.get(f"{server.url}/models", timeout=30)
            assert r.status_code == 200, r.text
            assert sorted(m["id"] for m in r.json()["data"]) == sorted(HOSTILE_NAMES)
    finally:
        server.stop()
