"""Models other apps already downloaded, found where those apps keep them.

- Hugging Face cache (huggingface_hub and every app built on it):
  `$HF_HUB_CACHE` or `$HF_HOME/hub` or `~/.cache/huggingface/hub` (XDG_CACHE_HOME respected),
  `models--{org}--{name}/snapshots/{revision}/{file}.gguf`, each a symlink into `blobs/`.
- LM Studio: `~/.lmstudio/models/{publisher}/{repo}/{file}.gguf` (0.3 and later) and the older
  `~/.cache/lm-studio/models/…`.
- GPT4All: its data folder, `{file}.gguf` at the top level (`incomplete-*` are downloads in
  progress): Linux `$XDG_DATA_HOME/nomic.ai/GPT4All`, macOS `~/Library/Application Support/
  nomic.ai/GPT4All`, Windows `%LOCALAPPDATA%\\nomic.ai\\GPT4All`.
- Ollama: `$OLLAMA_MODELS` or `~/.ollama/models` (and `/usr/share/ollama/.ollama/models` for the
  Linux service): `manifests/{registry}/{namespace}/{model}/{tag}` are JSON manifests whose layer
  of mediaType `application/vnd.ollama.image.model` has a digest `sha256:{hex}`, stored as
  `blobs/sha256-{hex}`. Blobs are recognised as GGUF by their magic and named `{model}:{tag}`.

Discovered files are offered to be *linked* (used in place); nothing here copies or changes them.
Every location comes from a `DiscoveryRoots`, built from a home folder, an environment and a
platform that tests can fake.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from app.core import statefile
from app.core.gguf_info import is_gguf

HF, LMSTUDIO, GPT4ALL, OLLAMA = "huggingface", "lm-studio", "gpt4all", "ollama"
SOURCE_LABELS = {HF: "Hugging Face cache", LMSTUDIO: "LM Studio", GPT4ALL: "GPT4All", OLLAMA: "Ollama"}
OLLAMA_MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
MAX_MANIFEST_BYTES = 1024 * 1024  # real manifests are under 2 KB


@dataclass(frozen=True)
class DiscoveryRoots:
    hf_hub: tuple[Path, ...] = ()
    lm_studio: tuple[Path, ...] = ()
    gpt4all: tuple[Path, ...] = ()
    ollama: tuple[Path, ...] = ()

    @classmethod
    def from_environment(cls, home: str | os.PathLike | None = None,
                         env: Mapping[str, str] | None = None,
                         platform: str | None = None) -> "DiscoveryRoots":
        """The usual places for this home folder, environment and platform ("linux", "darwin",
        "win32"); defaults are the real ones. System-wide folders are added only for the real
        machine (home=None), so a faked home sees nothing outside it."""
        real = home is None
        home = Path(home) if home is not None else Path.home()
        env = dict(os.environ if env is None else env)
        platform = platform or sys.platform

        def env_path(name: str) -> Path | None:
            value = env.get(name)
            return Path(value).expanduser() if value else None

        # Hugging Face: the same precedence as huggingface_hub.constants.
        if env_path("HF_HUB_CACHE"):
            hf = [env_path("HF_HUB_CACHE")]
        elif env_path("HUGGINGFACE_HUB_CACHE"):
            hf = [env_path("HUGGINGFACE_HUB_CACHE")]
        elif env_path("HF_HOME"):
            hf = [env_path("HF_HOME") / "hub"]
        else:
            cache = env_path("XDG_CACHE_HOME") or home / ".cache"
            hf = [cache / "huggingface" / "hub"]

        lm = [home / ".lmstudio" / "models", home / ".cache" / "lm-studio" / "models"]

        if platform.startswith("win"):
            local = env_path("LOCALAPPDATA") or home / "AppData" / "Local"
            g4a = [local / "nomic.ai" / "GPT4All"]
        elif platform == "darwin":
            g4a = [home / "Library" / "Application Support" / "nomic.ai" / "GPT4All"]
        else:
            data = env_path("XDG_DATA_HOME") or home / ".local" / "share"
            g4a = [data / "nomic.ai" / "GPT4All"]

        ollama = [env_path("OLLAMA_MODELS") or home / ".ollama" / "models"]
        if real and platform.startswith("linux"):
            ollama.append(Path("/usr/share/ollama/.ollama/models"))
        return cls(tuple(hf), tuple(lm), tuple(g4a), tuple(ollama))


@dataclass(frozen=True)
class DiscoveredModel:
    source: str              # huggingface | lm-studio | gpt4all | ollama
    key: str                 # stable handle, e.g. "ollama:llama3.2:latest"
    name: str                # what to call it, e.g. "llama3.2:latest" or "TheBloke/X-GGUF/x.gguf"
    path: Path               # the file to use in place (an HF snapshot path may be a symlink)
    size: int
    repo: str | None = None
    aliases: tuple[str, ...] = field(default=())
    in_library: str | None = None  # the library id when it is already linked or imported

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS.get(self.source, self.source)

    @property
    def suggested_id(self) -> str:
        if self.source == OLLAMA:  # "hf.co/org/model:tag" → "hf.co-org-model:tag"
            return self.name.replace("/", "-")
        return Path(self.name).name.removesuffix(".gguf")

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "key": self.key, "name": self.name, "path": str(self.path),
                "size": self.size, "repo": self.repo, "aliases": list(self.aliases),
                "in_library": self.in_library}


def _real(path: Path) -> str:
    try:
        return os.path.realpath(path)
    except OSError:
        return str(path)


def _first_part_only(name: str) -> bool:
    m = _SPLIT.search(name)
    return m is None or m.group(1) == "00001"


def _wanted_file(path: Path) -> bool:
    name = path.name
    low = name.lower()
    return (low.endswith(".gguf") and not low.startswith((".", "incomplete-", "mmproj"))
            and _first_part_only(name))


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _huggingface(root: Path) -> Iterator[DiscoveredModel]:
    if not root.is_dir():
        return
    for repo_dir in sorted(root.glob("models--*")):
        repo = repo_dir.name[len("models--"):].replace("--", "/")
        snapshots = repo_dir / "snapshots"
        if not snapshots.is_dir():
            continue
        seen: set[str] = set()
        # Newest snapshot first, so an older revision of the same file name is not listed twice.
        revs = sorted((p for p in snapshots.iterdir() if p.is_dir()),
                      key=lambda p: p.stat().st_mtime, reverse=True)
        for rev in revs:
            for path in sorted(rev.rglob("*.gguf")):
                rel = path.relative_to(rev).as_posix()
                if rel in seen or not _wanted_file(path):
                    continue
                size = _size(path)  # follows the symlink; None when the blob is missing
                if size is None or not is_gguf(path):
                    continue
                seen.add(rel)
                yield DiscoveredModel(HF, f"hf:{repo}/{rel}", f"{repo}/{rel}", path, size, repo=repo)


def _lm_studio(root: Path) -> Iterator[DiscoveredModel]:
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*.gguf")):
        if not _wanted_file(path) or not is_gguf(path):
            continue
        rel = path.relative_to(root).as_posix()
        parts = rel.split("/")
        repo = "/".join(parts[:2]) if len(parts) >= 3 else None
        yield DiscoveredModel(LMSTUDIO, f"lmstudio:{rel}", rel, path, _size(path) or 0, repo=repo)


def _gpt4all(root: Path) -> Iterator[DiscoveredModel]:
    if not root.is_dir():
        return
    for path in sorted(root.glob("*.gguf")):
        if not _wanted_file(path) or not is_gguf(path):
            continue
        yield DiscoveredModel(GPT4ALL, f"gpt4all:{path.name}", path.name, path, _size(path) or 0)


def _ollama_name(parts: list[str]) -> str:
    registry, namespace, model, tag = parts[-4:]
    if registry == "registry.ollama.ai":
        return f"{model}:{tag}" if namespace == "library" else f"{namespace}/{model}:{tag}"
    return f"{registry}/{namespace}/{model}:{tag}"


def _ollama(root: Path) -> Iterator[DiscoveredModel]:
    manifests, blobs = root / "manifests", root / "blobs"
    if not manifests.is_dir() or not blobs.is_dir():
        return
    by_blob: dict[str, list[str]] = {}
    blob_path: dict[str, Path] = {}
    for manifest in sorted(p for p in manifests.rglob("*") if p.is_file()):
        parts = manifest.relative_to(manifests).parts
        if len(parts) < 4:
            continue
        try:  # someone else's file: bounded, and skipped (never set aside) when unusable
            data = statefile.parse_file(manifest, max_bytes=MAX_MANIFEST_BYTES, max_depth=8)
        except statefile.StateFileError:
            continue
        layers = data.get("layers") if isinstance(data, dict) else None
        for layer in layers if isinstance(layers, list) else ():
            if not isinstance(layer, dict) or layer.get("mediaType") != OLLAMA_MODEL_MEDIA_TYPE:
                continue
            digest = layer.get("digest")
            # Only a real digest names a blob: anything else could point outside blobs/.
            if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
                continue
            algo, _, hexdigest = digest.partition(":")
            # Current Ollama writes "sha256-<hex>"; early versions wrote "sha256:<hex>".
            for candidate in (blobs / f"{algo}-{hexdigest}", blobs / f"{algo}:{hexdigest}"):
                if candidate.is_file():
                    blob_path[digest] = candidate
                    by_blob.setdefault(digest, []).append(_ollama_name(list(parts)))
                    break
    for digest, names in by_blob.items():
        path = blob_path[digest]
        if not is_gguf(path):
            continue
        names = sorted(set(names), key=lambda n: (not n.endswith(":latest"), n))
        yield DiscoveredModel(OLLAMA, f"ollama:{names[0]}", names[0], path, _size(path) or 0,
                              aliases=tuple(names[1:]))


def discover(roots: DiscoveryRoots | None = None) -> list[DiscoveredModel]:
    """Every GGUF model other apps keep in the places `roots` names (the real ones by default).

    The same file seen twice (a folder listed twice, or LM Studio pointing into the HF cache) is
    listed once."""
    roots = roots or DiscoveryRoots.from_environment()
    found: list[DiscoveredModel] = []
    seen: set[str] = set()
    scans = ([(_huggingface, r) for r in roots.hf_hub] + [(_lm_studio, r) for r in roots.lm_studio]
             + [(_gpt4all, r) for r in roots.gpt4all] + [(_ollama, r) for r in roots.ollama])
    for scan, root in scans:
        try:
            for model in scan(Path(root)):
                real = _real(model.path)
                if real not in seen:
                    seen.add(real)
                    found.append(model)
        except OSError:
            continue  # a folder we may not read (or that changes as we read) is someone else's
    return found
