"""Opening a file that must be a file, and putting a file in place without replacing another.

`open_regular` opens without blocking and checks the open descriptor, so a FIFO or a device put
where a file was expected is refused at once (opening a FIFO blocks until a writer comes;
reading /dev/zero never ends), and what is read afterwards is what was checked.

`os.replace` and `os.rename` silently replace whatever is at the destination: a model the user
imported a moment ago, or a download that finished in another process. Corral puts a new file
in place with `place_new`, which refuses (FileExistsError) when the name is taken, and copies
from an already-open, already-checked file (`copy_open_file`), so what lands in the models
folder is the file that was checked, not whatever the path names by then.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["NO_HARD_LINKS", "SpecialFile", "copy_open_file", "open_regular", "place_new",
           "same_file", "special_kind"]

_KINDS = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def special_kind(mode: int) -> str | None:
    """What a non-regular file is ("a named pipe (FIFO)", "a directory", …); None for a file."""
    if stat.S_ISREG(mode):
        return None
    return _KINDS.get(stat.S_IFMT(mode), "a special file")


class SpecialFile(Exception):
    """Not a regular file; `kind` says what it is ("a named pipe (FIFO)", "a directory")."""

    def __init__(self, path: str, kind: str):
        super().__init__(f"{path} is {kind}")
        self.path, self.kind = path, kind


def open_regular(path: str | os.PathLike) -> int:
    """A descriptor open for reading on the regular file at `path` (the caller closes it).
    SpecialFile when it is anything else — checked on the open descriptor, and the open itself
    does not block — OSError when it cannot be opened."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) \
        | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        try:  # a socket cannot be opened at all (ENXIO): say what it is
            kind = special_kind(os.stat(path).st_mode)
        except (OSError, ValueError):
            kind = None
        if kind:
            raise SpecialFile(os.fspath(path), kind) from None
        raise
    try:
        kind = special_kind(os.fstat(fd).st_mode)
        if kind:
            raise SpecialFile(os.fspath(path), kind)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)  # a regular file: ordinary reads from here on
        return fd
    except BaseException:
        os.close(fd)
        raise


# link() fails with these where the file system or the file cannot have a second name.
NO_HARD_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK,
                           errno.ENOSYS, errno.EACCES})

_NO_FOLLOW = {"follow_symlinks": False} if os.link in os.supports_follow_symlinks else {}


def place_new(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """Rename `src` to `dest` on the same file system, never replacing anything: FileExistsError
    when `dest` exists. A hard link makes the check and the rename one step; where hard links
    are not possible it falls back to a check just before the rename."""
    try:
        os.link(src, dest, **_NO_FOLLOW)  # a symlink is moved as the link it is
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in NO_HARD_LINKS:
            raise
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, "File exists", os.fspath(dest)) from None
        os.rename(src, dest)
        return
    os.unlink(src)


def same_file(path: str | os.PathLike, st: os.stat_result) -> bool:
    """Whether `path` is (still) the file `st` was taken of."""
    try:
        now = os.stat(path)
    except OSError:
        return False
    return (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino)


def copy_open_file(f: BinaryIO, dest: str | os.PathLike, *, block: int = 8 * 1024 * 1024,
                   progress: Callable[[int], None] | None = None) -> None:
    """Copy the open file `f` (from its start) to a new file `dest` (which must not exist),
    flushed to disk, with `f`'s permission bits and times. On any failure `dest` is removed.
    `progress(bytes copied)` is called after each block; an exception it raises (a cancel)
    stops the copy, and `dest` is removed like on any other failure."""
    st = os.fstat(f.fileno())
    f.seek(0)
    try:
        with open(dest, "xb") as out:
            if progress is None:
                shutil.copyfileobj(f, out, block)
            else:
                done = 0
                while chunk := f.read(block):
                    out.write(chunk)
                    done += len(chunk)
                    progress(done)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(dest, stat.S_IMODE(st.st_mode))
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
    except BaseException:
        Path(dest).unlink(missing_ok=True)
        raise
