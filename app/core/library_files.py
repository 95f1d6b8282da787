"""The library's two state files, read through app.core.statefile, and the header it caches.

- `<data>/library.json` (REGISTRY_FILE): the ids of the models and the linked models' paths —
  the user's data, set aside with a message when it cannot be used.
- `<cache>/inspect-cache.json` (INSPECT_CACHE): GGUF headers keyed by (real path, size,
  mtime), so that listing reads no file twice — only a cache, rebuilt silently.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from app.core import statefile
from app.core.safetext import terminal_safe
from app.core.statefile import Damaged, expect, keep_entries

FOLDER, LINKED = "folder", "linked"
CACHE_VERSION = 1


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


_HEADER_FIELDS = {f.name for f in fields(Header)}
# The JSON kind of each cached header field, from its annotation ("int | None" -> int).
_HEADER_FIELD_TYPES = {f.name: int if str(f.type).startswith("int") else str for f in fields(Header)}


def clean_id(text: str) -> str:
    """`text` with what a terminal or a table cannot show on one line (control characters, a
    file-name byte that is not UTF-8) replaced by "_": an id is typed and printed."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "_" for c in text)


def _check_registry(value: Any, problems: list[str]) -> dict[str, Any]:
    data = expect(value, dict)
    models = expect(data.get("models", {}), dict, "models")
    return {"version": 1, "models": keep_entries(models, _check_registry_entry, problems, "model")}


def _check_registry_entry(model_id: str, entry: Any) -> dict[str, Any]:
    expect(entry, dict, "its entry")
    kind, path = entry.get("kind"), expect(entry.get("path"), str, "path")
    if kind not in (FOLDER, LINKED):
        raise Damaged(f"kind must be {FOLDER!r} or {LINKED!r}, not {terminal_safe(repr(kind))[:40]}")
    if not path or "\0" in path or not model_id.strip():
        raise Damaged("an empty id or path")
    if kind == FOLDER and (Path(path).is_absolute() or ".." in Path(path).parts):
        raise Damaged("a folder model's path must be inside the models folder")
    out = {"kind": kind, "path": path}
    if isinstance(entry.get("origin"), str):  # only a label: anything else is dropped quietly
        out["origin"] = entry["origin"]
    return out


REGISTRY_FILE = statefile.Schema(
    default=lambda: {"version": 1, "models": {}}, check=_check_registry,
    then="the library was listed again from the models folder (linked models must be linked "
         "again; the set-aside file names them)")

_HEADER_TYPES = {"file_size": int, "parameters": int}  # the others: str or int, or None


def _check_cache(value: Any, problems: list[str]) -> dict[str, Any]:
    data = expect(value, dict)
    if data.get("version") != CACHE_VERSION:
        return {}
    return keep_entries(expect(data.get("files", {}), dict, "files"), _check_cache_entry, problems)


def _check_cache_entry(_key: str, entry: Any) -> dict[str, Any]:
    expect(entry, dict, "entry")
    for key in ("size", "mtime_ns"):
        expect(entry.get(key), int, key)
    if entry.get("error") is not None:
        expect(entry["error"], str, "error")
    header = entry.get("header")
    if header is not None:
        expect(header, dict, "header")
        if set(header) != _HEADER_FIELDS:
            raise Damaged("header fields differ")
        for key, kind in _HEADER_FIELD_TYPES.items():
            if header[key] is not None or key in _HEADER_TYPES:
                expect(header[key], kind, key)
    return entry


INSPECT_CACHE = statefile.Schema(cache=True, check=_check_cache)
