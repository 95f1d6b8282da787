"""The local library: scan, import, delete, per-model settings, discovery of other apps' models."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from app.core import gguf_info
from app.core.discovery import DiscoveryRoots, discover
from app.core.library import COPY, LINK, MOVE, ImportRejected, Library, LibraryError
from app.core.memory_plan import plan_for_info


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "corral"))
    return tmp_path


@pytest.fixture
def lib(home):
    return Library()


def put(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def test_scan_is_recursive_skips_partials_and_lists_invalid_files(lib, tiny_model):
    put(tiny_model, lib.models_dir / "a.gguf")
    put(tiny_model, lib.models_dir / "TheBloke" / "b.gguf")
    put(tiny_model, lib.models_dir / ".partial" / "c.gguf")
    put(tiny_model, lib.models_dir / ".d.gguf.importing-1")
    (lib.models_dir / "notes.txt").write_text("x")
    (lib.models_dir / "broken.gguf").write_bytes(b"GGML" + b"\0" * 100)
    models = {m.id: m for m in lib.scan()}
    assert set(models) == {"a", "b", "broken"}
    assert models["b"].ok and models["b"].quantization == "F32" and models["b"].kind == "folder"
    assert models["broken"].status == "invalid" and "broken.gguf" in models["broken"].error
    assert models["broken"].header is None
    plan = plan_for_info(models["a"].header, 1024)  # the plan shown before loading
    assert plan.weights == tiny_model.stat().st_size and plan.kv_cache == 2 * 1024 * 32 * 2 * 2


def test_ids_are_stable_and_deduplicated(lib, tiny_model):
    put(tiny_model, lib.models_dir / "x" / "model.gguf")
    first = {m.id: m.path for m in lib.scan()}
    put(tiny_model, lib.models_dir / "a" / "model.gguf")  # sorts before x/, must not steal "model"
    put(tiny_model, lib.models_dir / "Model.gguf")
    ids = {m.id: m.path for m in lib.scan()}
    assert ids["model"] == first["model"] == lib.models_dir / "x" / "model.gguf"
    assert set(ids) == {"model", "Model-2", "model-3"}  # new names in path order
    assert lib.get("MODEL").id == "model"
    assert lib.get(str(lib.models_dir / "a" / "model.gguf")).id == "model-3"
    with pytest.raises(LibraryError, match="no model 'nope' in the library"):
        lib.get("nope")


def test_headers_are_cached_by_path_size_and_mtime(home, tiny_model):
    calls = []

    def counting(path):
        calls.append(Path(path).name)
        return gguf_info.inspect(path)

    lib = Library(inspect=counting)
    for i in range(10):
        put(tiny_model, lib.models_dir / f"m{i}.gguf")
    assert len(lib.scan()) == 10 and len(calls) == 10
    assert len(Library(inspect=counting).scan()) == 10 and len(calls) == 10  # all from the cache
    os.utime(lib.models_dir / "m3.gguf", ns=(1, 1))
    lib.scan()
    assert calls[10:] == ["m3.gguf"]


def test_import_copy_move_and_link(lib, tiny_model, tmp_path):
    src = put(tiny_model, tmp_path / "outside" / "Vicuna-Test.gguf")
    copied = lib.import_file(src, COPY)
    assert copied.id == "Vicuna-Test" and copied.path == lib.models_dir / "Vicuna-Test.gguf"
    assert src.exists() and copied.path.read_bytes() == src.read_bytes()
    assert [p.name for p in lib.models_dir.iterdir()] == ["Vicuna-Test.gguf"]  # no temp left

    with pytest.raises(LibraryError, match="Vicuna-Test.gguf is already in the models folder"):
        lib.import_file(src, COPY)

    moved_src = put(tiny_model, tmp_path / "outside" / "moved.gguf")
    moved = lib.import_file(moved_src, MOVE)
    assert not moved_src.exists() and moved.path.exists() and moved.kind == "folder"

    linked = lib.import_file(src, LINK, name="my-vicuna")
    assert (linked.id, linked.kind, linked.path) == ("my-vicuna", "linked", src)
    assert lib.import_file(src, LINK).id == "my-vicuna"  # linking twice is one model
    assert not (lib.models_dir / "my-vicuna.gguf").exists()
    assert {m.id for m in Library().scan()} == {"Vicuna-Test", "moved", "my-vicuna"}


def test_import_rejects_a_non_gguf_with_gguf_infos_reason(lib, tmp_path):
    bad = tmp_path / "notes.gguf"
    bad.write_text("these are not weights")
    for mode in (COPY, MOVE, LINK):
        with pytest.raises(ImportRejected) as err:
            lib.import_file(bad, mode)
        assert "not a usable GGUF model" in str(err.value)
        assert str(bad) in str(err.value) and "not a GGUF file" in str(err.value)
    assert bad.exists() and lib.scan() == []
    with pytest.raises(LibraryError, match="no such file"):
        lib.import_file(tmp_path / "absent.gguf")


def test_import_name_cannot_escape_the_models_folder(lib, tiny_model):
    for name in ("../evil", ".hidden", "a/b", " "):
        with pytest.raises(LibraryError, match="cannot be a model name"):
            lib.import_file(tiny_model, COPY, name=name)


def test_import_checks_disk_space_first(lib, tiny_model, tmp_path, monkeypatch):
    src = put(tiny_model, tmp_path / "big.gguf")
    lib.models_dir.mkdir(parents=True)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**12, 10**12, 1000))
    with pytest.raises(LibraryError, match=r"not enough disk space to copy big.gguf \(844 kB\) into .*: 1 kB free"):
        lib.import_file(src, COPY)
    assert list(lib.models_dir.iterdir()) == []


def test_delete_removes_our_files_but_only_forgets_linked_ones(lib, tiny_model, tmp_path):
    ours = lib.import_file(put(tiny_model, tmp_path / "ours.gguf"), COPY)
    theirs_path = put(tiny_model, tmp_path / "theirs.gguf")
    theirs = lib.import_file(theirs_path, LINK)
    lib.update_model_settings("ours", template="alpaca")
    lib.update_model_settings("theirs", context=1024)

    result = lib.delete("ours")
    assert result.file_removed and not ours.path.exists() and "Deleted ours" in result.describe()
    result = lib.delete("theirs")
    assert not result.file_removed and theirs_path.exists()
    assert "the file stays at" in result.describe()
    assert lib.scan() == [] and lib.settings.all() == {}
    with pytest.raises(LibraryError):
        lib.delete("ours")


def test_missing_linked_file_is_listed_not_dropped(lib, tiny_model, tmp_path):
    path = put(tiny_model, tmp_path / "usb" / "m.gguf")
    lib.import_file(path, LINK)
    path.unlink()
    (m,) = lib.scan()
    assert m.status == "missing" and "file not found" in m.error


def test_per_model_settings_are_remembered(home, tiny_model, tmp_path):
    Library().import_file(put(tiny_model, tmp_path / "chat.gguf"))
    Library().update_model_settings("chat", template="vicuna-v1.1", context=2048, gpu_layers=0,
                                    sampling={"temperature": 0.2, "top_k": 40})
    s = Library().model_settings("chat")
    assert (s.template, s.context, s.gpu_layers, s.sampling) == (
        "vicuna-v1.1", 2048, 0, {"temperature": 0.2, "top_k": 40})
    lib = Library()
    assert lib.template_for(lib.get("chat")) == ("vicuna-v1.1", "setting")
    with pytest.raises(LibraryError):
        lib.update_model_settings("nope", context=1)


def test_template_comes_from_the_catalog_for_known_file_names(lib, tiny_model):
    m = lib.register(put(tiny_model, lib.models_dir / "mistral-7b-instruct-v0.2.Q4_K_M.gguf"))
    assert lib.template_for(m) == ("mistral-instruct", "catalog")
    other = lib.register(put(tiny_model, lib.models_dir / "whatever.gguf"))
    assert lib.template_for(other) == (None, "auto")
    with pytest.raises(LibraryError, match="not inside the models folder"):
        lib.register(Path("/tmp/x.gguf"))


# ---------------------------------------------------------------------- discovery

def fake_apps(home: Path, model: Path) -> dict[str, Path]:
    """Other apps' folders under a fake home, laid out as those apps lay them out."""
    made = {}
    # Hugging Face cache: snapshot files are symlinks into blobs/.
    repo = home / ".cache" / "huggingface" / "hub" / "models--TheBloke--TinyLlama-1.1B-Chat-v1.0-GGUF"
    blob = put(model, repo / "blobs" / ("ab" * 32))
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / "tinyllama.Q4_K_M.gguf").symlink_to(Path("../../blobs") / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    put(model, repo / "blobs" / ("cd" * 32 + ".incomplete"))
    made["hf"] = snap / "tinyllama.Q4_K_M.gguf"
    # LM Studio (0.3+) and its legacy folder.
    made["lms"] = put(model, home / ".lmstudio" / "models" / "lmstudio-community" / "Qwen-GGUF" / "qwen.Q4_K_M.gguf")
    put(model, home / ".lmstudio" / "models" / "lmstudio-community" / "Qwen-GGUF" / "mmproj-qwen.gguf")
    made["lms_old"] = put(model, home / ".cache" / "lm-studio" / "models" / "pub" / "repo" / "old.gguf")
    # GPT4All on Linux, with a download in progress beside it.
    g4a = home / ".local" / "share" / "nomic.ai" / "GPT4All"
    made["g4a"] = put(model, g4a / "Meta-Llama-3-8B-Instruct.Q4_0.gguf")
    put(model, g4a / "incomplete-mistral.gguf")
    (g4a / "localdocs_v2.db").write_bytes(b"SQLite")
    # Ollama: a manifest whose model layer is a GGUF blob; other layers are not models.
    ol = home / ".ollama" / "models"
    digest = "ef" * 32
    made["ollama"] = put(model, ol / "blobs" / f"sha256-{digest}")
    (ol / "blobs" / f"sha256-{'12' * 32}").write_text('{"stop": ["</s>"]}')
    manifest = {"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}", "size": 1},
        {"mediaType": "application/vnd.ollama.image.params", "digest": f"sha256:{'12' * 32}", "size": 1}]}
    for tag in ("latest", "1b"):
        m = ol / "manifests" / "registry.ollama.ai" / "library" / "llama3.2" / tag
        m.parent.mkdir(parents=True, exist_ok=True)
        m.write_text(json.dumps(manifest))
    broken = ol / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{")
    return made


def test_discovery_finds_hf_cache_lm_studio_gpt4all_and_ollama(tmp_path, tiny_model):
    home = tmp_path / "home"
    made = fake_apps(home, tiny_model)
    found = {d.key: d for d in discover(DiscoveryRoots.from_environment(home, env={}, platform="linux"))}
    assert set(found) == {
        "hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/tinyllama.Q4_K_M.gguf",
        "lmstudio:lmstudio-community/Qwen-GGUF/qwen.Q4_K_M.gguf",
        "lmstudio:pub/repo/old.gguf",
        "gpt4all:Meta-Llama-3-8B-Instruct.Q4_0.gguf",
        "ollama:llama3.2:latest",
    }
    hf = found["hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/tinyllama.Q4_K_M.gguf"]
    assert hf.path == made["hf"] and hf.repo == "TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF"
    assert hf.size == tiny_model.stat().st_size and hf.source_label == "Hugging Face cache"
    lms = found["lmstudio:lmstudio-community/Qwen-GGUF/qwen.Q4_K_M.gguf"]
    assert lms.repo == "lmstudio-community/Qwen-GGUF" and lms.suggested_id == "qwen.Q4_K_M"
    ol = found["ollama:llama3.2:latest"]
    assert ol.path == made["ollama"] and ol.name == "llama3.2:latest" and ol.aliases == ("llama3.2:1b",)


def test_discovery_roots_follow_env_and_platform(tmp_path):
    env = {"HF_HOME": str(tmp_path / "hf"), "OLLAMA_MODELS": str(tmp_path / "ol"),
           "LOCALAPPDATA": str(tmp_path / "local")}
    r = DiscoveryRoots.from_environment(tmp_path, env=env, platform="win32")
    assert r.hf_hub == (tmp_path / "hf" / "hub",) and r.ollama == (tmp_path / "ol",)
    assert r.gpt4all == (tmp_path / "local" / "nomic.ai" / "GPT4All",)
    r = DiscoveryRoots.from_environment(tmp_path, env={"HF_HUB_CACHE": "/x/hub"}, platform="darwin")
    assert r.hf_hub == (Path("/x/hub"),)
    assert r.gpt4all == (tmp_path / "Library" / "Application Support" / "nomic.ai" / "GPT4All",)
    assert DiscoveryRoots.from_environment(tmp_path, env={}, platform="linux").ollama == (tmp_path / ".ollama" / "models",)


def test_discovered_models_are_linked_in_place_never_copied(lib, tmp_path, tiny_model):
    home = tmp_path / "home"
    made = fake_apps(home, tiny_model)
    roots = DiscoveryRoots.from_environment(home, env={}, platform="linux")
    m = lib.add_discovered("llama3.2:1b", roots)  # an alias works too
    assert (m.id, m.kind, m.origin, m.path) == ("llama3.2:latest", "linked", "ollama", made["ollama"])
    g = lib.add_discovered(str(made["g4a"]), roots)
    assert g.id == "Meta-Llama-3-8B-Instruct.Q4_0" and g.origin == "gpt4all"
    assert not lib.models_dir.exists() or list(lib.models_dir.iterdir()) == []
    marked = {d.key: d.in_library for d in lib.discover(roots)}
    assert marked["ollama:llama3.2:latest"] == "llama3.2:latest"
    assert marked["lmstudio:pub/repo/old.gguf"] is None
    assert lib.add_discovered("ollama:llama3.2:latest", roots).id == "llama3.2:latest"
    with pytest.raises(LibraryError, match="no discovered model 'nope'"):
        lib.add_discovered("nope", roots)
    lib.delete("llama3.2:latest")
    assert made["ollama"].exists()


# --------------------------------------------------------------------------- hostile imports

def _swap_for_fifo_once(src: Path, original):
    """A stand-in for the header check that, once it is done, puts a FIFO where `src` was —
    what another program could do between an import's check and its copy."""
    done = []

    def check_then_swap(*args):
        info = original(*args)
        if not done:
            done.append(True)
            fifo = src.with_name("fifo.tmp")
            os.mkfifo(fifo)
            os.replace(fifo, src)
        return info
    return check_then_swap


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_file_swapped_for_a_fifo_after_its_check_is_neither_read_nor_waited_on(
        home, tiny_model, tmp_path, monkeypatch):
    src = put(tiny_model, tmp_path / "outside" / "swapped.gguf")
    swap = _swap_for_fifo_once(src, gguf_info.inspect)
    monkeypatch.setattr(gguf_info, "inspect_file", _swap_for_fifo_once(src, gguf_info.inspect_file)
                        if hasattr(gguf_info, "inspect_file") else swap, raising=False)
    lib = Library(inspect=swap)   # where the check was made before it read through one descriptor
    model = lib.import_file(src, COPY)
    assert model.ok and model.path.read_bytes() == tiny_model.read_bytes()  # the checked file
    assert src.is_fifo()          # the FIFO was never opened

    src2 = put(tiny_model, tmp_path / "outside" / "moved.gguf")
    monkeypatch.setattr(gguf_info, "inspect_file",
                        _swap_for_fifo_once(src2, gguf_info.inspect_file), raising=False)
    with pytest.raises(LibraryError, match="moved.gguf changed while it was being imported; "
                                           "nothing was imported"):
        Library(inspect=_swap_for_fifo_once(src2, gguf_info.inspect)).import_file(src2, MOVE)
    assert sorted(p.name for p in lib.models_dir.iterdir()) == ["swapped.gguf"]


@pytest.mark.timeout(20)
def test_special_files_are_refused_at_once(lib, tmp_path, special_files):
    specials = dict(special_files)
    if os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", tmp_path / "zero.gguf")
        specials["zero.gguf"] = "is not a regular file: it is a character device"
    for name, reason in specials.items():
        for mode in (COPY, MOVE, LINK):
            with pytest.raises(ImportRejected) as err:
                lib.import_file(tmp_path / name, mode)
            assert str(err.value) == f"not imported: {tmp_path / name}: {reason}"
    assert lib.scan() == [] and (tmp_path / "folder.gguf").is_dir()


def test_an_import_never_replaces_a_file_that_appears_meanwhile(lib, tiny_model, tmp_path,
                                                               monkeypatch):
    """Another process (a pull finishing) may put a file of the same name in place while an
    import copies: the import must stop, not replace it."""
    import app.core.library as library_module

    src = put(tiny_model, tmp_path / "outside" / "x.gguf")
    dest = lib.models_dir / "x.gguf"
    theirs = b"GGUF the download that finished meanwhile"
    original = getattr(library_module, "copy_open_file", None)

    def copy_then_race(*args, **kwargs):
        if original is not None:
            original(*args, **kwargs)
        dest.write_bytes(theirs)

    if original is not None:
        monkeypatch.setattr(library_module, "copy_open_file", copy_then_race)
    else:  # before: the copy went through shutil.copyfileobj
        real = shutil.copyfileobj
        monkeypatch.setattr(shutil, "copyfileobj", lambda *a: (real(*a), dest.write_bytes(theirs)))
    with pytest.raises(LibraryError, match="x.gguf is already in the models folder"):
        lib.import_file(src, COPY)
    assert dest.read_bytes() == theirs and src.exists()
    assert sorted(p.name for p in lib.models_dir.iterdir()) == ["x.gguf"]  # no temp file left


def test_an_id_that_would_not_print_on_one_line_is_renamed(lib, tiny_model, tmp_path):
    """An older registry may hold an id made from a file name with a newline or an escape."""
    src = put(tiny_model, tmp_path / "outside" / "linked.gguf")
    lib.registry_path.parent.mkdir(parents=True, exist_ok=True)
    lib.registry_path.write_text(json.dumps({"version": 1, "models": {
        "two\nlines": {"kind": "linked", "path": str(src)}, "two_lines": {"kind": "linked",
                                                                        "path": str(src)}}}))
    assert sorted(m.id for m in lib.scan()) == ["two_lines", "two_lines-2"]
