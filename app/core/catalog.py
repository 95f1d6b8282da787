"""The curated catalog: resources/catalog.json → `Catalog` of `CatalogEntry`.

Each entry names a real Hugging Face repository and GGUF file (checked against the hub; the
entry's `source` says how and `verified` says whether), with every quantisation we know of in
`files`. Families that exist only in the retired GGML format are listed with `available=False`,
the reason, and the id of the nearest GGUF `alternative`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from app.core.memory_plan import ArchShape
from app.core.resources import resource_path

if TYPE_CHECKING:
    from app.core.library import LocalModel

TEMPLATE_IDS = ("llama", "alpaca", "vicuna-v0", "vicuna-v1.1", "koala", "wizardlm", "llama-2-chat",
                "llama-3", "chatml", "mistral-instruct", "zephyr", "falcon-instruct")


class CatalogError(LookupError):
    """The catalog file is broken, or an id is not in it (the message says which)."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class CatalogFile:
    quant: str
    file: str
    size: int
    sha256: str | None = None
    size_exact: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"quant": self.quant, "file": self.file, "size": self.size,
                "sha256": self.sha256, "size_exact": self.size_exact}


@dataclass(frozen=True)
class CatalogEntry:
    id: str
    family: str
    name: str
    parameters: str                  # label, e.g. "7B"
    parameters_b: float | None       # billions, for estimates
    quantization: str | None         # the default file's quantisation (Q4_K_M where there is one)
    repo: str
    file: str | None                 # the default file
    size: int | None                 # bytes of the default file
    sha256: str | None
    template: str
    license: str
    gated: bool
    ram_needed: int | None           # bytes, CPU only, at min(trained context, 4096)
    context_length: int | None
    description: str
    available: bool = True
    unavailable_reason: str | None = None
    alternative: str | None = None
    verified: bool = False
    source: str = ""
    shape: ArchShape | None = None
    files: tuple[CatalogFile, ...] = field(default=())

    @property
    def quants(self) -> tuple[str, ...]:
        return tuple(f.quant for f in self.files)

    @property
    def url(self) -> str | None:
        if not self.file:
            return None
        return f"https://huggingface.co/{self.repo}/resolve/main/{self.file}"

    def file_for(self, quant: str | None = None) -> CatalogFile | None:
        """The file of quantisation `quant` (case-insensitive), or the default file for None."""
        if not self.files:
            return None
        if quant is None:
            return self.files[0]
        for f in self.files:
            if f.quant.lower() == quant.lower():
                return f
        return None

    def matches(self, text: str) -> bool:
        words = text.lower().split()
        hay = " ".join((self.id, self.family, self.name, self.repo, self.description,
                        self.parameters, self.template)).lower()
        return all(w in hay for w in words)

    def to_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in (
            "id", "family", "name", "parameters", "parameters_b", "quantization", "repo", "file",
            "size", "sha256", "template", "license", "gated", "ram_needed", "context_length",
            "description", "available", "unavailable_reason", "alternative", "verified", "source")}
        data["shape"] = None if self.shape is None else {
            "n_layers": self.shape.n_layers, "n_embd": self.shape.n_embd,
            "n_head": self.shape.n_head, "n_head_kv": self.shape.n_head_kv,
            "n_vocab": self.shape.n_vocab, "n_ctx_train": self.shape.n_ctx_train}
        data["files"] = [f.to_dict() for f in self.files]
        return data


class Catalog:
    def __init__(self, entries: Iterable[CatalogEntry], templates: Iterable[str] = TEMPLATE_IDS):
        self.entries: tuple[CatalogEntry, ...] = tuple(entries)
        self.templates: tuple[str, ...] = tuple(templates)
        self._by_id = {e.id: e for e in self.entries}

    def __iter__(self):
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._by_id

    def find(self, entry_id: str) -> CatalogEntry | None:
        return self._by_id.get(entry_id) or self._by_id.get(entry_id.lower())

    def get(self, entry_id: str) -> CatalogEntry:
        entry = self.find(entry_id)
        if entry is None:
            close = [e.id for e in self.entries if entry_id.lower() in e.id]
            hint = f"; did you mean {', '.join(close)}?" if close else "; `corral models search` lists more"
            raise CatalogError(f"no model {entry_id!r} in the catalog{hint}")
        return entry

    def families(self) -> list[str]:
        return sorted({e.family for e in self.entries})

    def by_family(self, family: str) -> list[CatalogEntry]:
        return [e for e in self.entries if e.family == family.lower()]

    def available(self) -> list[CatalogEntry]:
        return [e for e in self.entries if e.available]

    def search(self, text: str) -> list[CatalogEntry]:
        return [e for e in self.entries if e.matches(text)] if text.strip() else list(self.entries)

    def find_file(self, repo: str, filename: str) -> tuple[CatalogEntry, CatalogFile] | None:
        """The catalog entry and file for a hub (repo, filename), if curated."""
        for e in self.entries:
            if e.repo.lower() == repo.lower():
                for f in e.files:
                    if f.file == filename:
                        return e, f
        return None

    def entry_for_filename(self, filename: str) -> CatalogEntry | None:
        """The entry one of whose files has this name (how local files get a catalog template)."""
        for e in self.entries:
            if any(f.file == filename for f in e.files):
                return e
        return None

    def family_for(self, filename: str) -> str | None:
        """A local file's family: its entry's for a catalog file, else the longest family the
        file name contains ("openhermes-2.5-mistral-7b.Q4_K_M.gguf" → mistral, "tinyllama-…" →
        tinyllama, not llama); None when it names none (the GGUF header's architecture is all
        there is then)."""
        entry = self.entry_for_filename(filename)
        if entry is not None:
            return entry.family
        name = filename.lower()
        return next((f for f in sorted(self.families(), key=len, reverse=True) if f in name), None)


def shipped_catalog() -> Catalog | None:
    """The shipped catalog, or None when it cannot be read (what it would add — a family, a
    template — is then unknown, and nothing else is stopped by it)."""
    try:
        return load_catalog()
    except CatalogError:
        return None


def model_family(model: "LocalModel | str", catalog: Catalog | None) -> str:
    """The family a model is shown under, the same wherever one is named (the Library, the
    model picker): for a library model, the catalog's for its file name (Catalog.family_for),
    else its GGUF header's architecture; for a name (a server's model id), the catalog's for
    it; else ""."""
    if isinstance(model, str):
        name, architecture = model, None
    else:
        name = model.path.name
        architecture = model.header.architecture if model.header is not None else None
    family = catalog.family_for(name) if catalog is not None else None
    return family or architecture or ""


def _entry(raw: dict[str, Any], where: str) -> CatalogEntry:
    try:
        files = tuple(CatalogFile(quant=f["quant"], file=f["file"], size=int(f["size"]),
                                  sha256=f.get("sha256"), size_exact=bool(f.get("size_exact", False)))
                      for f in raw.get("files") or ())
        shape = raw.get("shape")
        return CatalogEntry(
            id=raw["id"], family=raw["family"], name=raw["name"], parameters=raw["parameters"],
            parameters_b=raw.get("parameters_b"), quantization=raw.get("quantization"),
            repo=raw["repo"], file=raw.get("file"), size=raw.get("size"), sha256=raw.get("sha256"),
            template=raw["template"], license=raw["license"], gated=bool(raw.get("gated", False)),
            ram_needed=raw.get("ram_needed"), context_length=raw.get("context_length"),
            description=raw["description"], available=bool(raw.get("available", True)),
            unavailable_reason=raw.get("unavailable_reason"), alternative=raw.get("alternative"),
            verified=bool(raw.get("verified", False)), source=raw.get("source", ""),
            shape=ArchShape(**shape) if shape else None, files=files)
    except (KeyError, TypeError, ValueError) as exc:
        raise CatalogError(f"{where}: entry {raw.get('id', '?')!r} is malformed ({exc})") from None


def validate(catalog: Catalog, where: str = "catalog") -> list[str]:
    """Problems in a catalog (an empty list when it is sound)."""
    problems: list[str] = []
    seen: set[str] = set()
    for e in catalog.entries:
        if e.id in seen:
            problems.append(f"duplicate id {e.id!r}")
        seen.add(e.id)
        if e.template not in catalog.templates:
            problems.append(f"{e.id}: unknown template {e.template!r}")
        if "/" not in e.repo:
            problems.append(f"{e.id}: repo {e.repo!r} is not owner/name")
        if e.available:
            if not e.files:
                problems.append(f"{e.id}: available but lists no files")
            else:
                d = e.files[0]
                if (e.file, e.size, e.quantization, e.sha256) != (d.file, d.size, d.quant, d.sha256):
                    problems.append(f"{e.id}: file/size/quantization/sha256 differ from files[0]")
            for f in e.files:
                if not f.file.endswith(".gguf"):
                    problems.append(f"{e.id}: {f.file} is not a .gguf file")
                if f.size <= 0:
                    problems.append(f"{e.id}: {f.file} has no size")
                if f.sha256 is not None and (len(f.sha256) != 64 or
                                             any(c not in "0123456789abcdef" for c in f.sha256)):
                    problems.append(f"{e.id}: {f.file} sha256 is not 64 hex digits")
            if len({f.quant.lower() for f in e.files}) != len(e.files):
                problems.append(f"{e.id}: a quantisation is listed twice")
        else:
            if not e.unavailable_reason:
                problems.append(f"{e.id}: unavailable without a reason")
            if not e.alternative:
                problems.append(f"{e.id}: unavailable without an alternative")
        if e.alternative is not None:
            alt = catalog.find(e.alternative)
            if alt is None:
                problems.append(f"{e.id}: alternative {e.alternative!r} is not in the catalog")
            elif not alt.available:
                problems.append(f"{e.id}: alternative {e.alternative!r} is not available either")
    return [f"{where}: {p}" for p in problems]


def load_catalog(path: str | Path | None = None) -> Catalog:
    """The catalog at `path` (default: the shipped resources/catalog.json), validated."""
    if path is None:
        return _shipped()
    return _load(Path(path))


@lru_cache(maxsize=1)
def _shipped() -> Catalog:
    return _load(resource_path("catalog.json"))


def _load(path: Path) -> Catalog:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"the model catalog {path} is missing") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogError(f"the model catalog {path} cannot be read: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("entries"), list):
        raise CatalogError(f"{path}: expected an object with an 'entries' list")
    catalog = Catalog((_entry(e, str(path)) for e in raw["entries"]),
                      raw.get("templates") or TEMPLATE_IDS)
    problems = validate(catalog, str(path))
    if problems:
        raise CatalogError("; ".join(problems))
    return catalog
