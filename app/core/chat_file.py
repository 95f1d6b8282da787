"""The chats database as a file: preparing it, what a failure to open it means, setting it aside.

A failure to open the database is one `ChatStoreError` whose `kind` tells the face what to offer:
- ``newer``: a newer Corral wrote it; the file is fine and left alone: update Corral;
- ``damaged``: not an SQLite file (random bytes, a FIFO), or a table missing: `set_aside` renames
  it (with its -wal and -shm) to a dated name and a new one is started, if the user agrees;
- ``unavailable``: the folder is read-only, the disk is full, another program locks it: the
  message says which, and opening again once that is fixed works.
The file is created owner-only (0600), as the other state files are. No Qt here.
"""

from __future__ import annotations

import os
from pathlib import Path

from app.core import statefile
from app.core.fileops import special_kind


class ChatStoreError(Exception):
    """The chats database cannot be used (the message says which file, why and what to do).
    `kind`: "newer", "damaged", "unavailable" (see the module's doc) or "missing" (no such
    conversation or message); `path`: the database's file."""

    def __init__(self, message: str, kind: str = "missing", path: Path | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.path = path


_HEADER = b"SQLite format 3\x00"  # the first bytes of every SQLite database file
_DAMAGED = ("file is not a database", "database disk image is malformed", "no such table",
            "no such column", "malformed database schema")


def store_error(path: Path, exc: BaseException) -> ChatStoreError:
    """The ChatStoreError for a failure to open or prepare the database at `path`."""
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc) if not isinstance(exc, OSError) else (exc.strerror or str(exc)).lower()
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or text.startswith(_DAMAGED):
        return damaged_error(path, text)
    if "full" in text or name == "SQLITE_FULL":
        hint = f"free some space on the disk that holds {path.parent}"
    elif "locked" in text or name in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        hint = "another program is using it: close it"
    elif path.parent.is_dir() and not os.access(path.parent, os.W_OK):
        hint = f"the folder {path.parent} is read-only: make it writable"
    else:
        hint = f"make sure Corral can write to {path.parent}"
    return ChatStoreError(f"cannot open the chats database {path} ({text}); {hint}, then try "
                          "again", "unavailable", path)


def damaged_error(path: Path, why: str) -> ChatStoreError:
    """A damaged database (`why`: what is wrong), with the way out the window offers."""
    return ChatStoreError(f"the chats database {path} is damaged ({why}); set it aside and "
                          "start a new one (it is kept under a dated name)", "damaged", path)


def prepare_file(path: Path) -> None:
    """Before SQLite opens `path`: create it owner-only (SQLite would make it 0644, and it holds
    what the user wrote; SQLite gives its -wal and -shm the same mode), or tighten one an older
    Corral made; refuse, as damaged, what is not an SQLite file (a FIFO would hang SQLite; on
    anything else its last close would delete a -wal file beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_CLOEXEC", 0), 0o600))
        return
    except FileExistsError:
        pass
    kind = special_kind(os.stat(path).st_mode)
    if kind:
        raise damaged_error(path, f"it is {kind}, not a file")
    with open(path, "rb") as fh:
        head = fh.read(len(_HEADER))
    if head and head != _HEADER:
        raise damaged_error(path, "file is not a database")
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if each.stat().st_mode & 0o077:
                os.chmod(each, 0o600)
        except OSError:  # not ours, or a read-only folder: it can still be read
            pass


def set_aside(path: str | os.PathLike) -> Path:
    """Rename the database at `path` (with its -wal and -shm files) to a dated name beside it,
    `chats.sqlite3.damaged-YYYYmmdd-HHMMSS`, never replacing anything; the new path. A new
    database is made at `path` when the store is opened next. Raises OSError."""
    path = Path(path)
    aside = statefile.set_aside(path)
    for suffix in ("-wal", "-shm"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():  # beside the copy under its name, so SQLite still pairs them
            os.replace(extra, aside.with_name(aside.name + suffix))
    return aside
