"""The local model library: what is in the models folder, what is linked from elsewhere.

- Folder models: every `*.gguf` under the models folder (recursively; `.partial/` and hidden
  names are skipped — they are downloads and imports in progress).
- Linked models: files anywhere else used in place (imported with --link, or discovered in another
  app's folder). They are listed in a registry in the data folder and never modified or deleted.

Each model has a stable id: its file name without `.gguf`, made unique with `-2`, `-3`… when two
files share a name. Ids are remembered in `<data>/library.json`, so adding a file never renames
another. Every file is validated with `gguf_info`; a file that is not a usable GGUF is listed with
the reason, not hidden. Header reads are cached in `<cache>/inspect-cache.json` keyed by
(path, size, mtime), so listing a library of many models reads no file twice.
"""

from __future__ import annotations

import errno
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from app.core import gguf_info, statefile
from app.core.discovery import DiscoveredModel, DiscoveryRoots, discover
from app.core.fileops import NO_HARD_LINKS, copy_open_file, place_new, same_file
from app.core.library_files import (CACHE_VERSION, FOLDER, INSPECT_CACHE, LINKED, REGISTRY_FILE,
                                    Header, clean_id)
from app.core.memory_plan import format_bytes
from app.core.paths import PARTIAL_DIR, get_paths
from app.core.safetext import terminal_safe
from app.core.settings import ModelSettings, ModelSettingsStore, current_settings
from app.core.statefile import write_json_atomic

COPY, MOVE, LINK = "copy", "move", "link"
DISK_RESERVE = 64 * 1024 * 1024   # keep this much free after a copy


class LibraryError(Exception):
    """Something a person can act on: unknown id, no space, file exists, not a GGUF."""


class ImportRejected(LibraryError):
    """The file is not a usable GGUF model; the message is gguf_info's reason."""


class ImportCancelled(LibraryError):
    """The user cancelled a copy; nothing of it was left behind."""


@dataclass(frozen=True)
class LocalModel:
    id: str
    path: Path
    kind: str                     # folder | linked
    size: int
    header: Header | None         # None when the file is missing or invalid
    error: str | None = None      # why it cannot be used
    origin: str | None = None     # for linked models: "lm-studio", "ollama", … or None

    @property
    def status(self) -> str:
        if self.header is not None:
            return "ok"
        return "missing" if not self.path.exists() else "invalid"

    @property
    def ok(self) -> bool:
        return self.header is not None

    @property
    def quantization(self) -> str | None:
        return self.header.quantization if self.header else None

    @property
    def parameters_label(self) -> str | None:
        return self.header.parameters_label if self.header else None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "path": str(self.path), "kind": self.kind, "size": self.size,
                "status": self.status, "error": self.error, "origin": self.origin,
                "header": self.header.to_dict() if self.header else None}


@dataclass(frozen=True)
class DeleteResult:
    model: LocalModel
    file_removed: bool            # False for linked models: only forgotten

    def describe(self) -> str:
        model, path = terminal_safe(self.model.id), terminal_safe(self.model.path)
        if self.file_removed:
            return f"Deleted {model} ({path})"
        return f"Forgot linked model {model}; the file stays at {path}"


def _real(path: Path) -> str:
    return os.path.realpath(path)


def _remove(path: Path) -> None:
    Path(path).unlink(missing_ok=True)


def _watch(src: Path, size: int, progress: Callable[[int, int], None] | None,
           cancel: threading.Event | None) -> Callable[[int], None] | None:
    """The per-block callback of a copy: report progress, stop when cancelled."""
    if progress is None and cancel is None:
        return None

    def step(done: int) -> None:
        if cancel is not None and cancel.is_set():
            raise ImportCancelled(f"the import of {terminal_safe(src.name)} was cancelled; "
                                  f"nothing was copied")
        if progress is not None:
            progress(done, size)
    return step


def register_download(models_dir: str | os.PathLike, path: str | os.PathLike) -> "LocalModel":
    """A finished download, added to the library of `models_dir` that it was downloaded into
    (its header read now, so listings show it at once). The one call both faces make when a
    download completes (the window's download controller, `corral models pull`)."""
    return Library(models_dir=models_dir).register(path)


class Library:
    def __init__(self, models_dir: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 inspect: Callable[[Path], Any] = gguf_info.inspect):
        paths = get_paths()
        self.models_dir = (Path(models_dir) if models_dir is not None
                           else current_settings().effective_models_dir())
        data = Path(data_dir) if data_dir is not None else paths.data
        self.registry_path = data / "library.json"
        self.cache_path = (Path(cache_dir) if cache_dir is not None else paths.cache) / "inspect-cache.json"
        self.settings = ModelSettingsStore(data / "model_settings.json")
        self._inspect = inspect

    # ------------------------------------------------------------------ registry and cache
    def _registry(self) -> dict[str, dict[str, Any]]:
        """The registry's models by id; entries that cannot be used were left out by the reader
        (and the file as it was set aside, with a notice). An id from an older version that
        would not print on one line is renamed."""
        models = statefile.read(self.registry_path, REGISTRY_FILE)["models"]
        out: dict[str, dict[str, Any]] = {}
        for mid, entry in models.items():
            out[mid if clean_id(mid) == mid else self._unique_id(mid, [*models, *out])] = entry
        return out

    def _save_registry(self, models: dict[str, dict[str, Any]]) -> None:
        write_json_atomic(self.registry_path, {"version": 1, "models": models})

    def _cache(self) -> dict[str, Any]:
        return statefile.read(self.cache_path, INSPECT_CACHE)

    def _entry_path(self, entry: dict[str, Any]) -> Path:
        path = Path(entry["path"])
        return path if entry["kind"] == LINKED else self.models_dir / path

    def _read(self, path: Path, cache: dict[str, Any], used: set[str]) -> tuple[int, Header | None, str | None]:
        """(size, header, error) for `path`, from the cache when size and mtime are unchanged."""
        key = _real(path)
        used.add(key)
        try:
            st = os.stat(path)
        except OSError as exc:
            return 0, None, f"{path}: {'file not found' if exc.errno == errno.ENOENT else exc.strerror}"
        hit = cache.get(key)
        if hit and hit.get("size") == st.st_size and hit.get("mtime_ns") == st.st_mtime_ns:
            header = Header(**hit["header"]) if hit.get("header") else None
            return st.st_size, header, hit.get("error")
        try:
            header, error = Header.from_info(self._inspect(path)), None
        except gguf_info.GGUFError as exc:
            header, error = None, str(exc)
        cache[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                      "header": header.to_dict() if header else None, "error": error}
        return st.st_size, header, error

    def _folder_files(self) -> list[str]:
        found: list[str] = []
        if not self.models_dir.is_dir():
            return found
        for dirpath, dirnames, filenames in os.walk(self.models_dir):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != PARTIAL_DIR)
            for name in sorted(filenames):
                if name.lower().endswith(".gguf") and not name.startswith("."):
                    found.append((Path(dirpath) / name).relative_to(self.models_dir).as_posix())
        return found

    @staticmethod
    def _unique_id(base: str, taken: Iterable[str]) -> str:
        taken = {t.lower() for t in taken}
        base = clean_id(base).strip() or "model"
        candidate, n = base, 2
        while candidate.lower() in taken:
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    def _sync(self, *, strict: bool = False) -> dict[str, dict[str, Any]]:
        """The registry brought up to date with the models folder (saved if it changed).

        When it cannot be saved (a read-only data folder), listing goes on and says so; with
        `strict` (an import, which must be remembered) the OSError is raised."""
        models = self._registry()
        before = dict(models)
        on_disk = set(self._folder_files())
        known = {e["path"]: mid for mid, e in models.items() if e["kind"] == FOLDER}
        for mid, entry in list(models.items()):
            if entry["kind"] == FOLDER and entry["path"] not in on_disk:
                del models[mid]
        for rel in sorted(on_disk - known.keys()):
            mid = self._unique_id(Path(rel).name[:-len(".gguf")], models)
            models[mid] = {"kind": FOLDER, "path": rel}
        if models != before:
            try:
                self._save_registry(models)
            except OSError as exc:
                if strict:
                    raise
                statefile.notify(f"{terminal_safe(self.registry_path)} cannot be written "
                                 f"({(exc.strerror or str(exc)).lower()}); the models are listed, "
                                 f"but the ids of new ones are not remembered")
        return models

    # ------------------------------------------------------------------ listing
    def scan(self) -> list[LocalModel]:
        """Every model, folder ones first, each validated (invalid and missing ones included)."""
        models = self._sync()
        cache = self._cache()
        before = {k: dict(v) for k, v in cache.items()}
        used: set[str] = set()
        out = [self._model(mid, e, cache, used) for mid, e in
               sorted(models.items(), key=lambda kv: (kv[1]["kind"] != FOLDER, kv[0].lower()))]
        cache = {k: v for k, v in cache.items() if k in used}
        if cache != before:  # only a cache: a read-only or full disk must not fail a listing
            statefile.write_cache(self.cache_path, {"version": CACHE_VERSION, "files": cache})
        return out

    def _model(self, mid: str, entry: dict[str, Any], cache: dict[str, Any], used: set[str]) -> LocalModel:
        path = self._entry_path(entry)
        size, header, error = self._read(path, cache, used)
        return LocalModel(mid, path, entry["kind"], size, header, error, entry.get("origin"))

    def get(self, ref: str) -> LocalModel:
        """The model with id `ref` (case-insensitive) or whose file is at path `ref`."""
        all_models = self.scan()
        for m in all_models:
            if m.id == ref:
                return m
        for m in all_models:
            if m.id.lower() == ref.lower():
                return m
        if os.path.exists(ref):
            real = _real(Path(ref))
            for m in all_models:
                if _real(m.path) == real:
                    return m
        raise LibraryError(f"no model {ref!r} in the library; `corral models list` shows the ids")

    def find_path(self, path: str | os.PathLike) -> LocalModel | None:
        real = _real(Path(path))
        return next((m for m in self.scan() if _real(m.path) == real), None)

    def _inside_models_dir(self, path: Path) -> bool:
        try:
            Path(_real(path)).relative_to(_real(self.models_dir))
            return True
        except ValueError:
            return False

    # ------------------------------------------------------------------ adding
    def register(self, path: str | os.PathLike) -> LocalModel:
        """Add a file that is already in the models folder (e.g. a finished download)."""
        path = Path(path)
        if not self._inside_models_dir(path):
            raise LibraryError(f"{path} is not inside the models folder {self.models_dir}")
        model = self.find_path(path)
        if model is None:
            raise LibraryError(f"{path}: not a .gguf file the library can list")
        return model

    def import_file(self, src: str | os.PathLike, mode: str = COPY, *, name: str | None = None,
                    origin: str | None = None, progress: Callable[[int, int], None] | None = None,
                    cancel: threading.Event | None = None) -> LocalModel:
        """Bring a GGUF file into the library: copy it, move it, or link it (use it in place).

        The file is opened once and checked, inspected and copied through that one descriptor:
        a FIFO, device, socket or directory is refused, and one swapped in later is never read.
        A name already taken in the models folder is never replaced. If the registry cannot be
        written, the import is undone (the copy removed, a moved file back where it was) and
        LibraryError says so. ImportRejected (gguf_info's reason) when it is not a usable model.
        A copy calls `progress(bytes copied, size)` after each block and stops with
        ImportCancelled, leaving nothing behind, once `cancel` is set."""
        if mode not in (COPY, MOVE, LINK):
            raise ValueError(f"mode must be copy, move or link, not {mode!r}")
        if name is not None and (not name.strip() or any(c in name for c in "/\\\0")
                                 or name.startswith(".")):
            raise LibraryError(f"{terminal_safe(repr(name))} cannot be a model name "
                               f"(no slashes, no leading dot)")
        src = Path(src).expanduser().absolute()
        if not os.path.lexists(src):
            raise LibraryError(f"{terminal_safe(src)}: no such file")
        try:
            f = gguf_info.open_model_file(src)
        except gguf_info.GGUFError as exc:
            raise ImportRejected(f"not imported: {exc}") from None
        with f:
            try:
                info = gguf_info.inspect_file(f, src)
            except gguf_info.GGUFError as exc:
                raise ImportRejected(f"not imported, not a usable GGUF model: {exc}") from None
            if self._inside_models_dir(src):
                return self.register(src)  # already ours, whatever the mode
            if mode == LINK:
                return self._link(src, name=name, origin=origin)
            dest = self.models_dir / (f"{name}.gguf" if name else src.name)
            if os.path.lexists(dest):
                raise self._taken(dest)
            self.models_dir.mkdir(parents=True, exist_ok=True)
            watch = _watch(src, info.file_size, progress, cancel)
            if mode == MOVE:
                return self._move(f, src, dest, info.file_size, watch)
            self._copy(f, src, dest, info.file_size, watch)
            return self._remember(dest, undo=lambda: _remove(dest), undone="the copy was removed")

    def _taken(self, dest: Path) -> LibraryError:
        other = self.find_path(dest) if dest.exists() else None
        return LibraryError(f"{terminal_safe(dest.name)} is already in the models folder"
                            + (f" (id {terminal_safe(other.id)})" if other else "")
                            + "; delete it first or import under another name")

    def _move(self, f, src: Path, dest: Path, size: int, watch: Callable[[int], None] | None) -> LocalModel:
        """Move the checked file `f` (at `src`) to `dest`: a second name first (so nothing is
        lost if anything fails), then the old name removed; a copy to another disk."""
        checked = os.fstat(f.fileno())
        where = f"the file is still at {terminal_safe(src)}"
        try:
            os.link(src, dest)  # fails if `dest` exists; the source keeps its name for now
        except FileExistsError:
            raise self._taken(dest) from None
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                if exc.errno not in NO_HARD_LINKS:
                    raise LibraryError(f"cannot move {terminal_safe(src)} to "
                                       f"{terminal_safe(dest)}: {exc.strerror}") from None
                return self._rename(src, dest, checked)
            self._copy(f, src, dest, size, watch)  # another disk: copy, then remove the source
            model = self._remember(dest, undo=lambda: _remove(dest),
                                   undone=f"the copy was removed and {where}")
            if same_file(src, checked):
                os.remove(src)
            return model
        if not same_file(dest, checked):  # `src` was replaced after it was checked
            _remove(dest)
            raise LibraryError(f"{terminal_safe(src)} changed while it was being imported; "
                               f"nothing was imported")
        model = self._remember(dest, undo=lambda: _remove(dest), undone=where)
        if same_file(src, checked):
            os.remove(src)
        return model

    def _rename(self, src: Path, dest: Path, checked: os.stat_result) -> LocalModel:
        """_move where the file system has no hard links: a rename after a last check."""
        try:
            place_new(src, dest)
        except FileExistsError:
            raise self._taken(dest) from None
        except OSError as exc:
            raise LibraryError(f"cannot move {terminal_safe(src)} to {terminal_safe(dest)}: "
                               f"{exc.strerror}") from None
        if not same_file(dest, checked):
            os.rename(dest, src)
            raise LibraryError(f"{terminal_safe(src)} changed while it was being imported; "
                               f"nothing was imported")
        return self._remember(dest, undo=lambda: os.rename(dest, src),
                              undone=f"the file was moved back to {terminal_safe(src)}")

    def _remember(self, dest: Path, *, undo: Callable[[], None], undone: str) -> LocalModel:
        """Register the new file `dest`; if the registry cannot be written, `undo` the import
        and raise LibraryError saying what was undone."""
        try:
            self._sync(strict=True)
        except (OSError, statefile.StateFileError) as exc:
            undo()
            why = (f"{terminal_safe(self.registry_path)} cannot be written "
                   f"({(exc.strerror or str(exc)).lower()})" if isinstance(exc, OSError) else str(exc))
            raise LibraryError(f"{terminal_safe(dest.name)} was not imported: {why}; {undone}") from None
        return self.register(dest)

    def _copy(self, f, src: Path, dest: Path, size: int, watch: Callable[[int], None] | None) -> None:
        free = shutil.disk_usage(self.models_dir).free
        if free < size + DISK_RESERVE:
            raise LibraryError(
                f"not enough disk space to copy {terminal_safe(src.name)} ({format_bytes(size)}) "
                f"into {terminal_safe(self.models_dir)}: {format_bytes(free)} free")
        tmp = dest.with_name(f".{dest.name}.importing-{os.getpid()}")
        try:
            _remove(tmp)  # left by an import of this process id that was killed
            copy_open_file(f, tmp, progress=watch)
            if watch is not None:
                watch(size)  # a cancel during the last block and the flush still counts
            place_new(tmp, dest)
        except FileExistsError:
            _remove(tmp)
            raise self._taken(dest) from None
        except BaseException as exc:
            _remove(tmp)
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise LibraryError(f"the disk filled while copying {terminal_safe(src.name)} "
                                   f"into {terminal_safe(self.models_dir)}; nothing was "
                                   f"imported") from None
            raise

    def _link(self, src: Path, *, name: str | None, origin: str | None) -> LocalModel:
        existing = self.find_path(src)
        if existing is not None:
            return existing
        models = self._sync()
        mid = self._unique_id(name or src.name.removesuffix(".gguf").removesuffix(".GGUF"), models)
        models[mid] = {"kind": LINKED, "path": str(src), **({"origin": origin} if origin else {})}
        try:
            self._save_registry(models)
        except OSError as exc:
            raise LibraryError(f"{terminal_safe(src.name)} was not linked: "
                               f"{terminal_safe(self.registry_path)} cannot be written "
                               f"({(exc.strerror or str(exc)).lower()})") from None
        return self.get(mid)

    # ------------------------------------------------------------------ removing
    def delete(self, ref: str) -> DeleteResult:
        """Remove a model: a folder model's file is deleted; a linked one is only forgotten."""
        model = self.get(ref)
        removed = False
        if model.kind == FOLDER:
            if not self._inside_models_dir(model.path):  # never delete outside our folder
                raise LibraryError(f"{model.path} is outside the models folder; not deleting it")
            try:
                os.remove(model.path)
                removed = True
            except FileNotFoundError:
                pass
        models = self._registry()
        models.pop(model.id, None)
        self._save_registry(models)
        self.settings.remove(model.id)
        return DeleteResult(model, removed)

    # ------------------------------------------------------------------ per-model settings
    def model_settings(self, ref: str) -> ModelSettings:
        return self.settings.get(self.get(ref).id)

    def update_model_settings(self, ref: str, **changes: Any) -> ModelSettings:
        return self.settings.update(self.get(ref).id, **changes)

    def template_for(self, model: LocalModel) -> tuple[str | None, str]:
        """(template id, where it came from): the user's choice, else the catalog's for this
        file name, else (None, "auto") — left to template detection from the GGUF."""
        from app.core.turns.template_choice import model_template_setting

        return model_template_setting(self.settings.get(model.id), model.path)

    # ------------------------------------------------------------------ discovery
    def discover(self, roots: DiscoveryRoots | None = None) -> list[DiscoveredModel]:
        """Models other apps downloaded, each marked with its library id if already here."""
        have = {_real(m.path): m.id for m in self.scan()}
        out = []
        for d in discover(roots):
            mid = have.get(_real(d.path))
            out.append(d if mid is None else DiscoveredModel(**{**d.__dict__, "in_library": mid}))
        return out

    def add_discovered(self, ref: str, roots: DiscoveryRoots | None = None) -> LocalModel:
        """Link a discovered model (by key, name, alias or path); never copies it."""
        found = self.discover(roots)
        real = _real(Path(ref)) if os.path.exists(ref) else None
        for d in found:
            if ref in (d.key, d.name, *d.aliases) or (real and _real(d.path) == real):
                if d.in_library:
                    return self.get(d.in_library)
                return self.import_file(d.path, LINK, name=d.suggested_id, origin=d.source)
        raise LibraryError(f"no discovered model {ref!r}; `corral models discover` lists them")
