"""Library.import_file reports a copy's progress and can be cancelled, leaving nothing behind
(issue 17 §5). Core only: no Qt."""

from __future__ import annotations

import os
import shutil
import threading

import pytest

from app.core.library import COPY, MOVE, ImportCancelled, Library


@pytest.fixture
def lib(tmp_path, monkeypatch):
    monkeypatch.setenv("CORRAL_HOME", str(tmp_path / "corral"))
    return Library()


def leftovers(lib: Library) -> list[str]:
    """Everything in the models folder, hidden temporary files included."""
    if not lib.models_dir.exists():
        return []
    return sorted(str(p.relative_to(lib.models_dir)) for p in lib.models_dir.rglob("*"))


def test_a_copy_reports_its_progress_up_to_the_size(lib, small_model):
    size = small_model.stat().st_size
    seen: list[tuple[int, int]] = []
    model = lib.import_file(small_model, COPY, progress=lambda done, total: seen.append((done, total)))
    assert model.path == lib.models_dir / small_model.name and model.ok
    assert len(seen) >= 3  # a 34 MiB file is copied in 8 MiB blocks
    assert all(total == size for _, total in seen)
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[0] > 0 and done[-1] == size
    assert model.path.read_bytes() == small_model.read_bytes()


def test_a_cancelled_copy_leaves_nothing_behind(lib, small_model):
    cancel = threading.Event()
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        cancel.set()  # the user presses Cancel after the first block

    with pytest.raises(ImportCancelled, match=f"import of {small_model.name} was cancelled"):
        lib.import_file(small_model, COPY, progress=progress, cancel=cancel)
    assert len(seen) == 1
    lib.models_dir.mkdir(parents=True, exist_ok=True)  # (it may not even exist)
    assert leftovers(lib) == []          # no partial copy, no hidden temporary file
    assert lib.scan() == []              # nothing registered
    assert small_model.is_file()         # the source is untouched


def test_a_cancel_during_the_last_block_still_leaves_nothing(lib, tiny_model, tmp_path):
    # The tiny model is one block: the cancel is seen after the copy, before the file is placed.
    src = tmp_path / "one-block.gguf"
    shutil.copyfile(tiny_model, src)
    cancel = threading.Event()
    with pytest.raises(ImportCancelled):
        lib.import_file(src, COPY, progress=lambda done, total: cancel.set(), cancel=cancel)
    assert leftovers(lib) == [] and lib.scan() == []


def test_a_cancelled_move_across_disks_keeps_the_source(lib, small_model, tmp_path, monkeypatch):
    src = tmp_path / "elsewhere" / "moving.gguf"
    src.parent.mkdir()
    shutil.copyfile(small_model, src)

    def other_disk(a, b, **kw):  # os.link across file systems fails with EXDEV: the move copies
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", other_disk)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ImportCancelled):
        lib.import_file(src, MOVE, cancel=cancel)
    assert leftovers(lib) == [] and lib.scan() == []
    assert src.read_bytes() == small_model.read_bytes()
