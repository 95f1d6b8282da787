"""Checks for text and files that come from outside, before anything acts on them.

- `text_problem(text)`: why a str is not text that can be encoded as UTF-8 (a lone surrogate
  from a JSON "\\ud800" escape, or a byte that was not UTF-8 in a command-line argument, which
  Python keeps as a surrogate escape), or None. Such a string crashed the llama.cpp runner.
- `bad_json(data, max_depth)`: the first place in parsed JSON nested too deeply or holding such
  a string, as a path a person can find ("messages[2].content"), or None.
- `read_text_file(path, limit, what)`: a regular file's text, at most `limit` bytes, UTF-8;
  a FIFO or a device (`/dev/zero`) is refused before it is read, never read until memory ends.

Each raises or returns one line a face can show as it is.
"""

from __future__ import annotations

import os
import stat
from typing import Any

__all__ = ["InputError", "bad_json", "read_text_file", "text_problem"]


class InputError(ValueError):
    """Input that cannot be used; the message names it and says what is wrong."""


def text_problem(text: str, *, from_bytes: bool = False) -> str | None:
    """None for text that encodes as UTF-8; else what is wrong and where, e.g. "holds a lone
    surrogate (\\ud800) at character 3". `from_bytes`: the text was decoded from bytes with
    surrogate escapes (a command-line argument, a file name), so U+DC80…U+DCFF are bytes that
    were not UTF-8 and are named as such."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        if from_bytes and 0xDC80 <= code <= 0xDCFF:
            return f"holds a byte that is not UTF-8 (0x{code - 0xDC00:02x}) at character {exc.start}"
        return (f"holds a lone surrogate (\\u{code:04x}) at character {exc.start}, "
                f"which is not a character")
    return None


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def bad_json(data: Any, max_depth: int = 64) -> tuple[str, str] | None:
    """(where, what is wrong) for the first string that is not text or the first value nested
    deeper than `max_depth`; None when all is well. Iterative: a deep document cannot
    exhaust the stack here."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                return path or "the body", problem
        elif isinstance(value, (dict, list)):
            if depth >= max_depth:
                return path or "the body", f"is nested more than {max_depth} levels deep"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in reversed(list(items)):
                if isinstance(key, str) and text_problem(key):
                    return path or "the body", f"has a key that {text_problem(key)}"
                stack.append((item, _join(path, key), depth + 1))
    return None


def read_text_file(path: str | os.PathLike, limit: int, what: str = "file") -> str:
    """The text of a regular file of at most `limit` bytes (InputError otherwise, naming it)."""
    name = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
        fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"{name}: no such {what}") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise InputError(f"{name}: {kind}; give a {what} of at most {_size(limit)}")
        if st.st_size > limit:
            raise InputError(f"{name}: {_size(st.st_size)}, larger than the limit of "
                             f"{_size(limit)} for a {what}")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)  # the file may have grown since fstat
    except OSError as exc:
        raise InputError(f"{name}: cannot be read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise InputError(f"{name}: larger than the limit of {_size(limit)} for a {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start})") from None


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"
