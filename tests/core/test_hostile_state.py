"""Standing hostile-input suite for Corral's state files (issue 14), run as users run `corral`.

Each persistent JSON store is damaged each way (random bytes, not UTF-8, 100,000-deep nesting,
a list instead of an object, an entry that is a string, a missing key, a field of the wrong
type, an empty file, a FIFO in its place), then the command that reads it runs in a child
process. Every time: no traceback and no hang; the command still does its work; the user's data
is set aside under a dated name with exactly its bytes and one line names the file; a cache is
rebuilt without a word; the next run is quiet. Also here: Ollama manifests of any shape, a
read-only data folder, a registry that cannot be written during an import, special files
offered for import.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.testing.hub_server import local_hub  # noqa: F401  (a fixture)

REPO = Path(__file__).resolve().parents[2]
SERVER = {"name": "good", "url": "http://127.0.0.1:9/v1", "key_store": "file", "extras": True}
HUB_REPO, HUB_FILE = "hostile/state-GGUF", "state.gguf"


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("HF_", "HUGGINGFACE_", "OLLAMA_", "XDG_", "LOCALAPPDATA"))}
    e.update(CORRAL_HOME=str(tmp_path / "corral"), HOME=str(tmp_path / "home"),
             PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
             PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    return e


def corral(env, *args: str, preexec=None, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *args], env=env, cwd=REPO, stdin=stdin,
                          capture_output=True, text=True, timeout=120, preexec_fn=preexec)


# --------------------------------------------------------------------------- the stores

@dataclass
class Store:
    rel: str                      # the file, relative to CORRAL_HOME
    command: tuple[str, ...]      # what reads it
    cache: bool = False
    shapes: dict[str, bytes] = field(default_factory=dict)  # store-specific wrong shapes


def _j(data) -> bytes:
    return json.dumps(data).encode()


STORES = {
    "settings": Store("settings.json", ("models", "list"), shapes={
        "a field of the wrong type": _j({"threads": "four", "theme": "dark"}),
        "a value out of range": _j({"backend": "tpu", "context_size": 1}),
    }),
    "library": Store("library.json", ("models", "list"), shapes={
        "an entry that is a string": _j({"version": 1, "models": {"x": "linked"}}),
        "a missing key": _j({"version": 1, "models": {"x": {"kind": "linked"}}}),
        "a field of the wrong type": _j({"version": 1, "models": {"x": {"kind": "linked", "path": 5}}}),
        "models as a list": _j({"version": 1, "models": []}),
    }),
    "model settings": Store("model_settings.json", ("models", "list"), shapes={
        "an entry that is a string": _j({"version": 1, "models": {"good": "chatml"}}),
        "a field of the wrong type": _j({"version": 1, "models": {"good": {"context": "big"}}}),
        "models as a list": _j({"version": 1, "models": ["good"]}),
    }),
    "inspect cache": Store("cache/inspect-cache.json", ("models", "list"), cache=True, shapes={
        "an entry that is a string": _j({"version": 1, "files": {"x": "s"}}),
        "a missing key": _j({"version": 1, "files": {"x": {"size": 1}}}),
        "a field of the wrong type": _j({"version": 1, "files": {"x": {
            "size": 1, "mtime_ns": 1, "header": {"file_size": "big"}, "error": None}}}),
    }),
    "servers": Store("servers.json", ("servers", "list"), shapes={
        "an entry that is a string": _j({"version": 1, "servers": [SERVER, "other"]}),
        "a missing key": _j({"version": 1, "servers": [SERVER, {"name": "other"}]}),
        "a field of the wrong type": _j({"version": 1, "servers": [SERVER, {"name": "o", "url": 5}]}),
        "servers as an object": _j({"version": 1, "servers": {"good": SERVER}}),
    }),
    "server keys": Store("server-keys.json", ("servers", "rm", "good"), shapes={
        "a key that is not text": _j({"good": "k", "other": 5}),
    }),
    "download queue": Store("downloads/queue.json", ("models", "pull", HUB_REPO, HUB_FILE,
                                                     "--no-check"), shapes={
        "an entry that is a string": _j({"version": 1, "jobs": ["job"]}),
        "a missing key": _j({"version": 1, "jobs": [{"id": "x"}]}),
        "a field of the wrong type": _j({"version": 1, "jobs": [
            {"id": 1, "repo_id": HUB_REPO, "filename": HUB_FILE}]}),
        "jobs as an object": _j({"version": 1, "jobs": {"id": "x"}}),
    }),
}

GENERIC = {
    "random bytes": b"\xff" + random.Random(14).randbytes(511),
    "not UTF-8": b'{"name": "caf\xe9"}',
    "100,000-deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "a list instead of an object": b"[]",
    "an empty file": b"",
}

CASES = [pytest.param(store, how, data, id=f"{store}: {how}")
         for store, spec in STORES.items()
         for how, data in [*GENERIC.items(), *spec.shapes.items()]]


def _aside(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name + ".damaged-"))


def _prepare(store: str, env, home: Path, tiny_model: Path, request) -> None:
    """What the command needs besides the damaged file: a model, a server, a hub file."""
    shutil.copyfile(tiny_model, (home / "models").joinpath("good.gguf"))
    if store == "server keys":
        (home / "servers.json").write_bytes(_j({"version": 1, "servers": [SERVER]}))
    if store == "download queue":
        hub = request.getfixturevalue("local_hub")
        hub.add_repo(HUB_REPO)
        hub.add_file(HUB_REPO, HUB_FILE, tiny_model.read_bytes())
        env.update(HF_ENDPOINT=hub.url)


def _worked(store: str, r: subprocess.CompletedProcess, home: Path) -> None:
    """The command did its work despite the damage."""
    assert r.returncode == 0, r.stderr
    if store == "servers":
        assert r.stdout.startswith(("good\t", "No servers"))
    elif store == "server keys":
        assert r.stdout == "Removed good (http://127.0.0.1:9/v1)\n"
    elif store == "download queue":
        assert Path(r.stdout.strip().splitlines()[-1]) == home / "models" / HUB_FILE
    else:
        assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == ["good"]


def _home_with(store: str, env, tiny_model, request) -> tuple:
    """(its spec, the home, the store's path): a home with a model and what the store's command
    needs (_prepare), the store's folder made; the test then damages the file at the path."""
    spec = STORES[store]
    home = Path(env["CORRAL_HOME"])
    path = home / spec.rel
    path.parent.mkdir(parents=True, exist_ok=True)
    (home / "models").mkdir(parents=True, exist_ok=True)
    _prepare(store, env, home, tiny_model, request)
    return spec, home, path


@pytest.mark.timeout(180)
@pytest.mark.parametrize("store, how, data", CASES)
def test_a_damaged_store_is_set_aside_or_rebuilt_and_the_command_works(
        store, how, data, env, tiny_model, request):
    spec, home, path = _home_with(store, env, tiny_model, request)
    path.write_bytes(data)

    r = corral(env, *spec.command)
    assert "Traceback" not in r.stderr
    _worked(store, r, home)
    told = [line for line in r.stderr.splitlines() if spec.rel.split("/")[-1] in line]
    if spec.cache:
        assert r.stderr == "" and _aside(path) == []
        cache = json.loads(path.read_text(encoding="utf-8"))   # rebuilt
        assert cache["version"] == 1 and [Path(k).name for k in cache["files"]] == ["good.gguf"]
    else:
        [aside] = _aside(path)
        assert re.fullmatch(re.escape(path.name) + r"\.damaged-\d{8}-\d{6}", aside.name)
        assert aside.read_bytes() == data                      # the user's bytes, all of them
        assert len(told) == 1, r.stderr                        # one line names the file
        assert told[0].startswith("corral: ") and str(path) in told[0] and aside.name in told[0]
    if store in ("server keys", "download queue"):
        return  # the command changed what it reads (a server removed, a file pulled)
    again = corral(env, *spec.command)                         # the next run is quiet
    _worked(store, again, home)
    assert again.stderr == "" and len(_aside(path)) == (0 if spec.cache else 1)


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
@pytest.mark.parametrize("store", list(STORES))
def test_a_fifo_in_place_of_a_store_does_not_hang_the_command(store, env, tiny_model, request):
    spec, home, path = _home_with(store, env, tiny_model, request)
    os.mkfifo(path)
    r = corral(env, *spec.command)
    assert "Traceback" not in r.stderr
    _worked(store, r, home)
    if spec.cache:
        assert r.stderr == "" and path.is_file()
    else:
        assert "is a named pipe (FIFO), not a file" in r.stderr and _aside(path)[0].is_fifo()


# --------------------------------------------------------------------------- Ollama manifests

OLLAMA_MODEL = "application/vnd.ollama.image.model"


def test_ollama_manifests_of_any_shape_do_not_break_discover(env, tiny_model):
    ollama = Path(env["HOME"]) / ".ollama" / "models"
    digest = "ab" * 32
    (ollama / "blobs").mkdir(parents=True)
    shutil.copyfile(tiny_model, ollama / "blobs" / f"sha256-{digest}")
    outside = ollama / "outside.gguf"   # what a digest with "../" would point at
    shutil.copyfile(tiny_model, outside)
    manifests = ollama / "manifests" / "registry.ollama.ai" / "library"

    def manifest(name: str, data: bytes) -> Path:
        p = manifests / name / "latest"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p

    manifest("good", _j({"layers": [{"mediaType": OLLAMA_MODEL, "digest": f"sha256:{digest}"}]}))
    for i, data in enumerate([
        b"[]", _j({"layers": 5}), _j({"layers": "abc"}), _j({"layers": {"a": 1}}),
        _j({"layers": [5, None, "x"]}),
        _j({"layers": [{"mediaType": OLLAMA_MODEL, "digest": 5}]}),
        _j({"layers": [{"mediaType": OLLAMA_MODEL, "digest": {"a": 1}}]}),
        _j({"layers": [{"mediaType": OLLAMA_MODEL, "digest": "sha256:../outside.gguf"}]}),
        _j({"layers": [{"mediaType": OLLAMA_MODEL, "digest": "sha256:" + "a" * 100_000}]}),
        b"\xff\xfe" + random.Random(6).randbytes(100),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"layers": [' + b" " * (2 * 1024 * 1024) + b"]}",
    ]):
        manifest(f"bad{i}", data)
    if hasattr(os, "mkfifo"):
        os.mkfifo(manifests / "bad0" / "fifo")
    r = corral(env, "models", "discover", "--json")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert [d["key"] for d in json.loads(r.stdout)] == ["ollama:good:latest"]
    r = corral(env, "models", "discover")
    assert r.returncode == 0 and r.stderr == "" and "ollama:good:latest" in r.stdout


# --------------------------------------------------------------------------- read-only folders

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _drop_override() -> None:
    """In a child run as root: drop the capabilities that let root write where the permissions
    say no (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER), so a read-only folder is one."""
    for cap in (1, 2, 3):
        if _libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture
def read_only(tmp_path):
    """read_only(folder, ...) makes folders read-only; yields the preexec_fn children need."""
    made: list[Path] = []

    def make(*folders: Path):
        for folder in folders:
            folder.chmod(0o555)
            made.append(folder)
        return preexec

    preexec = None
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        if _libc is None:
            pytest.skip("running as root, and root ignores folder permissions here")
        probe = subprocess.run(["true"], preexec_fn=_drop_override, capture_output=True) \
            if shutil.which("true") else None
        if probe is None or probe.returncode != 0:
            pytest.skip("running as root without the right to drop CAP_DAC_OVERRIDE")
        preexec = _drop_override
    yield make
    for folder in made:
        folder.chmod(0o755)


def test_models_list_works_in_a_read_only_data_folder(env, tiny_model, read_only):
    home = Path(env["CORRAL_HOME"])
    (home / "models").mkdir(parents=True)
    shutil.copyfile(tiny_model, home / "models" / "first.gguf")
    assert corral(env, "models", "list").returncode == 0
    (home / "cache" / "inspect-cache.json").unlink()   # to be rebuilt: cannot be written now
    preexec = read_only(home, home / "cache", home / "models")
    r = corral(env, "models", "list", preexec=preexec)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == ["first"]

    (home / "models").chmod(0o755)
    shutil.copyfile(tiny_model, home / "models" / "second.gguf")  # a new id to remember
    r = corral(env, "models", "list", preexec=preexec)
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == ["first", "second"]
    assert r.stderr == (f"corral: {home / 'library.json'} cannot be written (permission denied); "
                        f"the models are listed, but the ids of new ones are not remembered\n")


@pytest.mark.parametrize("how, undone", [
    ((), "the copy was removed"),
    (("--move",), "the file is still at {src}"),
])
def test_an_import_whose_registry_cannot_be_written_is_undone(env, tiny_model, tmp_path, read_only,
                                                              how, undone):
    home = Path(env["CORRAL_HOME"])
    (home / "models").mkdir(parents=True)
    src = tmp_path / "outside" / "new.gguf"
    src.parent.mkdir()
    shutil.copyfile(tiny_model, src)
    preexec = read_only(home)   # the models folder in it stays writable
    r = corral(env, "models", "import", str(src), *how, preexec=preexec)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr == (f"corral: new.gguf was not imported: {home / 'library.json'} cannot be "
                        f"written (permission denied); {undone.format(src=src)}\n")
    assert list((home / "models").iterdir()) == []          # nothing left behind
    assert src.read_bytes() == tiny_model.read_bytes()       # and nothing lost


# --------------------------------------------------------------------------- special files

@pytest.mark.timeout(60)
def test_special_files_offered_for_import_are_refused_in_one_line(env, tmp_path, special_files):
    offered = dict(special_files)
    if os.path.exists("/dev/zero"):
        offered["/dev/zero"] = "is not a regular file: it is a character device"
    for name, reason in offered.items():
        path = tmp_path / name
        for how in ((), ("--move",), ("--link",)):
            r = corral(env, "models", "import", str(path), *how)
            assert r.returncode == 1 and r.stdout == ""
            assert r.stderr == f"corral: not imported: {path}: {reason}\n"
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe.gguf").st_mode) if hasattr(os, "mkfifo") else True
    r = corral(env, "models", "list")
    assert r.returncode == 0 and "No models yet" in r.stdout
