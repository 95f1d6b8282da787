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
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterable

from app.core import gguf_info
from app.core.discovery import DiscoveredModel, DiscoveryRoots, discover
from app.core.memory_plan import format_bytes
from app.core.paths import PARTIAL_DIR, get_paths
from app.core.settings import (ModelSettings, ModelSettingsStore, load_settings, read_json,
                               write_json_atomic)

FOLDER, LINKED = "folder", "linked"
COPY, MOVE, LINK = "copy", "move", "link"
DISK_RESERVE = 64 * 1024 * 1024   # keep this much free after a copy
CACHE_VERSION = 1


class LibraryError(Exception):
    """Something a person can act on: unknown id, no space, file exists, not a GGUF."""


class ImportRejected(LibraryError):
    """The file is not a usable GGUF model; the message is gguf_info's reason."""


@dataclass(frozen=True)
class Header:
    """What the library keeps of a GGUF header (the fields of gguf_info.ModelInfo it shows)."""

    file_size: int
    architecture: str | None = None
    name: str | None = None
    parameters: int = 0
    parameters_label: str | None = None
    quantization: str | None = None
    context_length: int | None = None
    embedding_length: int | None = None
    block_count: int | None = None
    head_count: int | None = None
    head_count_kv: int | None = None
    vocab_size: int | None = None
    chat_template: str | None = None

    @classmethod
    def from_info(cls, info: Any) -> "Header":
        return cls(**{f.name: getattr(info, f.name, None) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


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
        if self.file_removed:
            return f"Deleted {self.model.id} ({self.model.path})"
        return f"Forgot linked model {self.model.id}; the file stays at {self.model.path}"


def _real(path: Path) -> str:
    return os.path.realpath(path)


class Library:
    def __init__(self, models_dir: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 inspect: Callable[[Path], Any] = gguf_info.inspect):
        paths = get_paths()
        self.models_dir = Path(models_dir) if models_dir is not None else load_settings().effective_models_dir()
        data = Path(data_dir) if data_dir is not None else paths.data
        self.registry_path = data / "library.json"
        self.cache_path = (Path(cache_dir) if cache_dir is not None else paths.cache) / "inspect-cache.json"
        self.settings = ModelSettingsStore(data / "model_settings.json")
        self._inspect = inspect

    # ------------------------------------------------------------------ registry and cache
    def _registry(self) -> dict[str, dict[str, Any]]:
        data = read_json(self.registry_path, default={}) or {}
        return dict(data.get("models", {}))

    def _save_registry(self, models: dict[str, dict[str, Any]]) -> None:
        write_json_atomic(self.registry_path, {"version": 1, "models": models})

    def _cache(self) -> dict[str, Any]:
        try:
            data = read_json(self.cache_path, default={}) or {}
        except Exception:  # a broken cache is only a cache: start again
            return {}
        return data.get("files", {}) if data.get("version") == CACHE_VERSION else {}

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
        base = base.strip() or "model"
        candidate, n = base, 2
        while candidate.lower() in taken:
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    def _sync(self) -> dict[str, dict[str, Any]]:
        """The registry brought up to date with the models folder (saved if it changed)."""
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
            self._save_registry(models)
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
        if cache != before:
            write_json_atomic(self.cache_path, {"version": CACHE_VERSION, "files": cache})
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
                    origin: str | None = None) -> LocalModel:
        """Bring a GGUF file into the library: copy it, move it, or link it (use it in place).

        Raises ImportRejected with gguf_info's reason when it is not a usable GGUF model."""
        if mode not in (COPY, MOVE, LINK):
            raise ValueError(f"mode must be copy, move or link, not {mode!r}")
        if name is not None and (not name.strip() or any(c in name for c in "/\\\0")
                                 or name.startswith(".")):
            raise LibraryError(f"{name!r} cannot be a model name (no slashes, no leading dot)")
        src = Path(src).expanduser().absolute()
        if not src.exists():
            raise LibraryError(f"{src}: no such file")
        try:
            info = self._inspect(src)
        except gguf_info.GGUFError as exc:
            raise ImportRejected(f"not imported, not a usable GGUF model: {exc}") from None
        if self._inside_models_dir(src):
            return self.register(src)  # already ours, whatever the mode
        if mode == LINK:
            return self._link(src, name=name, origin=origin)
        dest = self.models_dir / (f"{name}.gguf" if name else src.name)
        if dest.exists():
            other = self.find_path(dest)
            raise LibraryError(f"{dest.name} is already in the models folder"
                               + (f" (id {other.id})" if other else "")
                               + "; delete it first or import under another name")
        self.models_dir.mkdir(parents=True, exist_ok=True)
        if mode == MOVE:
            try:
                os.rename(src, dest)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise LibraryError(f"cannot move {src} to {dest}: {exc.strerror}") from None
                self._copy(src, dest, info.file_size)  # another disk: copy, then remove the source
                os.remove(src)
        else:
            self._copy(src, dest, info.file_size)
        return self.register(dest)

    def _copy(self, src: Path, dest: Path, size: int) -> None:
        free = shutil.disk_usage(self.models_dir).free
        if free < size + DISK_RESERVE:
            raise LibraryError(
                f"not enough disk space to copy {src.name} ({format_bytes(size)}) into "
                f"{self.models_dir}: {format_bytes(free)} free")
        tmp = dest.with_name(f".{dest.name}.importing-{os.getpid()}")
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                shutil.copyfileobj(fin, fout, 8 * 1024 * 1024)
                fout.flush()
                os.fsync(fout.fileno())
            shutil.copystat(src, tmp)
            os.replace(tmp, dest)
        except BaseException as exc:
            try:
                os.remove(tmp)
            except FileNotFoundError:
                pass
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise LibraryError(f"the disk filled while copying {src.name} into "
                                   f"{self.models_dir}; nothing was imported") from None
            raise

    def _link(self, src: Path, *, name: str | None, origin: str | None) -> LocalModel:
        existing = self.find_path(src)
        if existing is not None:
            return existing
        models = self._sync()
        mid = self._unique_id(name or src.name.removesuffix(".gguf").removesuffix(".GGUF"), models)
        models[mid] = {"kind": LINKED, "path": str(src), **({"origin": origin} if origin else {})}
        self._save_registry(models)
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
        chosen = self.settings.get(model.id).template
        if chosen:
            return chosen, "setting"
        from app.core.catalog import CatalogError, load_catalog
        try:
            entry = load_catalog().entry_for_filename(model.path.name)
        except CatalogError:
            entry = None
        if entry is not None:
            return entry.template, "catalog"
        return None, "auto"

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
