"""What the hub's answers may name, checked before Corral uses it (no network, no Qt here).

- `local_name(filename)`: the one rule for hub file names. A name Corral downloads becomes a
  file in the models folder, so it must be one the library lists and deletes: a `.gguf` file,
  not hidden, no `.`/`..`/empty path parts, no control characters, no backslash, nothing a
  Windows disk cannot hold. Returns the name in the models folder; raises `BadFileName`.
- `repo_summaries(data)` / `gguf_files(repo_id, data)`: the search and file-tree answers, read
  defensively: an entry of the wrong shape (a string, a missing or mistyped field, a hostile
  name) is skipped; an answer that is not a list at all raises `ValueError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from huggingface_hub.utils import HFValidationError, validate_repo_id

MAX_NAME_BYTES = 255        # one path part, as most file systems allow
MAX_PATH_CHARS = 1000       # a whole hub path
_WINDOWS_FORBIDDEN = set('<>:"|?*')
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                    *(f"LPT{i}" for i in range(1, 10))}
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BadFileName(ValueError):
    """A hub file name Corral will not download; str() is one line saying why."""


@dataclass(frozen=True)
class RepoSummary:
    repo_id: str
    author: str | None
    downloads: int
    likes: int
    last_modified: datetime | None
    gated: bool
    tags: tuple[str, ...]


@dataclass(frozen=True)
class HubFile:
    repo_id: str
    filename: str
    size: int
    sha256: str | None  # None for a file kept in git rather than LFS


def local_name(filename: object) -> str:
    """The name `filename` (a path in a hub repository) gets in the models folder: its last part."""
    if not isinstance(filename, str) or not filename:
        raise BadFileName("a hub file name is needed (e.g. model.Q4_K_M.gguf)")
    shown = ascii(filename) if len(filename) <= 120 else ascii(filename[:117] + "...")
    if len(filename) > MAX_PATH_CHARS:
        raise BadFileName(f"{shown}: the hub file name is too long")
    if any(ord(c) < 32 or ord(c) == 127 for c in filename):
        raise BadFileName(f"{shown}: a file name with control characters cannot be downloaded")
    if "\\" in filename:
        raise BadFileName(f"{shown}: hub paths use '/', not '\\'")
    try:
        filename.encode("utf-8")
    except UnicodeEncodeError:
        raise BadFileName(f"{shown}: the file name is not valid text") from None
    parts = filename.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BadFileName(f"{shown}: not a file in the repository (give its path, e.g. "
                          "sub/model.Q4_K_M.gguf, without '.', '..' or a trailing '/')")
    name = parts[-1]
    if not name.lower().endswith(".gguf") or len(name) <= len(".gguf"):
        raise BadFileName(f"{shown}: Corral downloads GGUF models only (a name ending in .gguf)")
    if name.startswith("."):
        raise BadFileName(f"{shown}: a hidden file (its name starts with '.') cannot be downloaded")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise BadFileName(f"{shown}: the file name is longer than {MAX_NAME_BYTES} bytes")
    if _WINDOWS_FORBIDDEN & set(name) or name.endswith((" ", ".")) \
            or name.split(".")[0].upper() in _WINDOWS_DEVICES:
        raise BadFileName(f"{shown}: the name cannot be a file on every system (no < > : \" | ? *)")
    return PurePosixPath(filename).name


def is_repo_id(value: object) -> bool:
    """huggingface_hub's own rule for repository ids (and a string at all)."""
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return isinstance(value, str) and value.isprintable()


def _count(value: object) -> int:
    """A non-negative int from JSON, else 0 (bools are not counts)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def repo_summaries(data: object) -> list[RepoSummary]:
    """The repositories of a search answer (GET /api/models); entries of the wrong shape are skipped."""
    if not isinstance(data, list):
        raise ValueError(f"a list of repositories was expected, not {type(data).__name__}")
    found = []
    for item in data:
        if not isinstance(item, dict):
            continue
        repo_id = item.get("id", item.get("modelId"))
        if not is_repo_id(repo_id):
            continue
        author, tags, gated = item.get("author"), item.get("tags"), item.get("gated")
        found.append(RepoSummary(
            repo_id=repo_id,
            author=author if is_repo_id(author) else (repo_id.partition("/")[0] if "/" in repo_id else None),
            downloads=_count(item.get("downloads")), likes=_count(item.get("likes")),
            last_modified=_when(item.get("lastModified")),
            gated=gated is True or isinstance(gated, str) and gated.lower() not in ("", "false"),
            tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else ()))
    return found


def gguf_files(repo_id: str, data: object) -> list[HubFile]:
    """The downloadable .gguf files of one page of a file-tree answer (GET …/tree/REV?recursive=true)."""
    if not isinstance(data, list):
        raise ValueError(f"a list of files was expected, not {type(data).__name__}")
    files = []
    for entry in data:
        if not isinstance(entry, dict) or entry.get("type", "file") != "file":
            continue
        path = entry.get("path")
        try:
            local_name(path)
        except BadFileName:
            continue  # not a .gguf file, or a name Corral would refuse to download
        lfs = entry.get("lfs") if isinstance(entry.get("lfs"), dict) else {}
        size = lfs.get("size", entry.get("size"))
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            continue
        sha = lfs.get("oid", lfs.get("sha256"))
        sha = sha.lower() if isinstance(sha, str) and _SHA256.fullmatch(sha.lower()) else None
        files.append(HubFile(repo_id, path, size, sha))
    return files
