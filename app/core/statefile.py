"""One reader and one writer for every JSON state file Corral keeps, with one policy.

Every file Corral keeps as JSON (settings.json, library.json, model_settings.json, servers.json,
server-keys.json, the download queue, the inspect cache) is read by `load()` / `read()` against a
small `Schema`: the file is read through one descriptor opened non-blocking (a FIFO put in its
place cannot hang the reader), at most `max_bytes` of it, decoded as UTF-8, parsed with nesting
bounded (no RecursionError, however deep), and then checked by the schema's `check`, which
returns the value normalised and may leave out entries it cannot use.

The policy is the schema's kind:
- a cache (`Schema(cache=True)`) is only a cache: anything wrong with it gives the default
  silently, and it is rebuilt by its next write (`write_cache`, which never fails the caller);
- anything else is the user's data: a file that cannot be used at all is set aside as
  `NAME.damaged-YYYYmmdd-HHMMSS` (renamed, so its bytes are kept exactly) and the default is
  used; a file from which some entries had to be left out is set aside the same way and the
  usable part written in its place. Either way there is one message naming the file, what was
  wrong and where the original is. A damaged file that cannot be set aside raises
  `StateFileError` instead, so that nothing is ever written over it.

Messages reach the user through `notify()`: each face subscribes (`add_listener`; the CLI prints
them on stderr) or collects them (`take_notices`). Foreign JSON files that are not ours to set
aside (an Ollama manifest) are read with `parse_file()`, which has the same bounds and raises.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from app.core.fileops import SpecialFile, open_regular, place_new
from app.core.memory_plan import format_bytes
from app.core.safetext import terminal_safe

log = logging.getLogger("corral.state")

MIB = 1024 * 1024
DEFAULT_MAX_BYTES = 8 * MIB
DEFAULT_MAX_DEPTH = 32


class StateFileError(Exception):
    """A state file that cannot be used; the message names it and says what is wrong."""


class Damaged(StateFileError):
    """The content is not what the file must hold (raised by parsing and by schema checks;
    a check raises it with the reason only, e.g. "models must be an object, not a list")."""


@dataclass(frozen=True)
class Schema:
    """What one state file must hold and what to do when it does not.

    `check(value, problems)` gets the parsed JSON and returns it normalised; it raises `Damaged`
    when nothing of it is usable and appends one short line to `problems` for each entry it
    leaves out (see `expect`, `keep_entries`, `keep_items`). `then` finishes the message when
    the file is set aside ("the default settings are used")."""

    default: Callable[[], Any] = dict
    check: Callable[[Any, list[str]], Any] | None = None
    cache: bool = False
    then: str = "it starts again empty"
    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    private: bool = False          # written back owner-only (it may hold a secret)


@dataclass(frozen=True)
class Loaded:
    value: Any
    notice: str | None = None      # the one line for the user; None when all was well
    aside: Path | None = None      # where the original was kept, when it was set aside


# --------------------------------------------------------------------------- notices

_lock = threading.Lock()
_listeners: list[Callable[[str], None]] = []
_pending: deque[str] = deque(maxlen=50)
_said: set[str] = set()


def notify(message: str) -> None:
    """Tell the user `message` (once per process): logged, kept for `take_notices`, and passed
    to every listener."""
    with _lock:
        if message in _said:
            return
        _said.add(message)
        _pending.append(message)
        listeners = list(_listeners)
    log.info("%s", message)  # recorded where logging is set up; listeners tell the user
    for listener in listeners:
        try:
            listener(message)
        except Exception:  # noqa: BLE001 - a broken listener must not break the reader
            log.exception("state notice listener failed")


def add_listener(listener: Callable[[str], None]) -> Callable[[str], None]:
    with _lock:
        _listeners.append(listener)
    return listener


def remove_listener(listener: Callable[[str], None]) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def take_notices() -> list[str]:
    """The messages not taken yet, oldest first (a window shows them when it opens)."""
    with _lock:
        out = list(_pending)
        _pending.clear()
    return out


# --------------------------------------------------------------------------- reading

def read_bytes(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes | None:
    """The bytes of the file at `path`, None when there is none. Raises Damaged when it is not
    a regular file or is larger than `max_bytes`, StateFileError when it cannot be read."""
    try:
        fd = open_regular(path)
    except FileNotFoundError:
        return None
    except SpecialFile as exc:
        raise Damaged(f"is {exc.kind}, not a file") from None
    except OSError as exc:
        raise StateFileError(f"{_show(path)}: cannot be read: {_strerror(exc)}") from None
    except ValueError as exc:  # a NUL in the path
        raise StateFileError(f"{_show(path)}: cannot be read: {exc}") from None
    try:
        st = os.fstat(fd)
        if st.st_size > max_bytes:
            raise Damaged(f"is too large ({format_bytes(st.st_size)}; the limit is "
                          f"{format_bytes(max_bytes)})")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(MIB, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:  # it grew while being read
                raise Damaged(f"is too large (over {format_bytes(max_bytes)})")
        return b"".join(chunks)
    except OSError as exc:
        raise StateFileError(f"{_show(path)}: cannot be read: {_strerror(exc)}") from None
    finally:
        os.close(fd)


def parse(data: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The JSON value in `data`; raises Damaged with the reason (not UTF-8, not JSON, nested
    deeper than `max_depth`, empty)."""
    if data.startswith(b"\xef\xbb\xbf"):  # a byte-order mark some editors add
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Damaged(f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start:,})") from None
    if not text.strip():
        raise Damaged("is empty")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Damaged(f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise Damaged(f"is nested too deeply (more than {max_depth} levels)") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise Damaged(f"is not valid JSON ({exc})") from None
    if _depth(value) > max_depth:
        raise Damaged(f"is nested too deeply (more than {max_depth} levels)")
    return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value`, found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_file(path: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES,
               max_depth: int = DEFAULT_MAX_DEPTH, missing: Any = None) -> Any:
    """The JSON in `path` (`missing` when there is no file), with the bounds of `load()` but no
    policy: raises StateFileError ("PATH: what is wrong") for anything unusable. For files that
    are not ours to set aside, and for callers that decide themselves."""
    try:
        data = read_bytes(path, max_bytes)
        return missing if data is None else parse(data, max_depth)
    except Damaged as exc:
        raise Damaged(f"{_show(path)}: {exc}") from None


# One reader of the user's data at a time in this process: a damaged file is set aside and its
# usable part written back in steps, and a second thread reading meanwhile (the window's library
# scan and its chat) would find it gone (the default, as if empty), or fail to set it aside too.
_loading = threading.RLock()


def load(path: str | os.PathLike, schema: Schema) -> Loaded:
    """The value of the state file at `path` under `schema`'s policy (see the module's doc).
    Nothing is notified: the caller shows `notice` (or use `read()`, which notifies)."""
    if schema.cache:  # never set aside nor written back here
        return _load(Path(path), schema)
    with _loading:
        return _load(Path(path), schema)


def _load(path: Path, schema: Schema) -> Loaded:
    try:
        data = read_bytes(path, schema.max_bytes)
        if data is None:
            return Loaded(schema.default())
        problems: list[str] = []
        value = parse(data, schema.max_depth)
        if schema.check is not None:
            value = schema.check(value, problems)
    except Damaged as exc:
        return _damaged(path, schema, str(exc))
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        # A check that met a shape it did not foresee: still the file's fault, not a crash.
        return _damaged(path, schema, f"holds something Corral cannot read ({type(exc).__name__})")
    except StateFileError:
        if schema.cache:
            return Loaded(schema.default())
        raise
    if not problems or schema.cache:
        return Loaded(value)
    aside = _set_aside_or_raise(path, f"{len(problems)} entr{'y' if len(problems) == 1 else 'ies'} "
                                      f"cannot be read ({_summary(problems)})")
    try:
        write_json_atomic(path, value, private=schema.private)
        kept = "the rest was kept"
    except OSError as exc:
        kept = f"the rest could not be written back ({_strerror(exc)}), so {schema.then}"
    what = "an entry that could not be read was" if len(problems) == 1 else \
        f"{len(problems)} entries that could not be read were"
    return Loaded(value, f"{_show(path)}: {what} left out ({_summary(problems)}); {kept}, and "
                         f"the file as it was is kept as {aside.name}", aside)


def read(path: str | os.PathLike, schema: Schema) -> Any:
    """`load(path, schema).value`, with its notice (if any) sent through `notify()`."""
    loaded = load(path, schema)
    if loaded.notice:
        notify(loaded.notice)
    return loaded.value


def _damaged(path: Path, schema: Schema, reason: str) -> Loaded:
    if schema.cache:
        log.info("%s: %s; rebuilding it", path, reason)
        return Loaded(schema.default())
    aside = _set_aside_or_raise(path, reason)
    return Loaded(schema.default(), f"{_show(path)}: {reason}; it was kept as {aside.name} and "
                                    f"{schema.then}", aside)


def _set_aside_or_raise(path: Path, reason: str) -> Path:
    try:
        return set_aside(path)
    except OSError as exc:
        raise StateFileError(f"{_show(path)}: {reason}, and it could not be set aside "
                             f"({_strerror(exc)}); move it away or fix it") from None


def set_aside(path: str | os.PathLike) -> Path:
    """Rename `path` to `NAME.damaged-YYYYmmdd-HHMMSS` (with -2, -3… if taken) beside it, never
    replacing anything; the new path. Raises OSError when it cannot be done."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        aside = path.with_name(f"{path.name}.damaged-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            place_new(path, aside)
        except FileExistsError:
            continue
        return aside
    raise FileExistsError(errno.EEXIST, "too many set-aside copies", str(path))


def _summary(problems: list[str], shown: int = 3) -> str:
    text = "; ".join(problems[:shown])
    return text + (f"; and {len(problems) - shown} more" if len(problems) > shown else "")


def _show(path: str | os.PathLike) -> str:
    return terminal_safe(os.fspath(path))


def _strerror(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc)


# --------------------------------------------------------------------------- checks

def describe(value: Any) -> str:
    """The JSON kind of `value` for a message: "a list", "an object", "text", "a number"…"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_WANTED = {dict: "an object", list: "a list", str: "text", int: "a whole number",
           bool: "true or false", float: "a number"}


def expect(value: Any, kind: type, what: str | None = None) -> Any:
    """`value` if it is of JSON kind `kind` (dict, list, str, int, float, bool), else Damaged
    ("WHAT must be an object, not a list"; with no `what`, about the whole file: "holds a list
    where an object is expected"). A bool is never an int; an int is a float."""
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        wanted = _WANTED.get(kind, kind.__name__)
        if what is None:
            raise Damaged(f"holds {describe(value)} where {wanted} is expected")
        raise Damaged(f"{what} must be {wanted}, not {describe(value)}")
    return value


def merged(values: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A stored mapping (a conversation's options, a model's sampling settings) with `changes`
    merged in key by key: a None value removes its key."""
    out = dict(values)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def keep_entries(mapping: dict, check_entry: Callable[[str, Any], Any], problems: list[str],
                 what: str = "entry") -> dict:
    """The entries of `mapping` that `check_entry(key, value)` accepts (its result), in order;
    one line in `problems` for each it refuses with Damaged."""
    out = {}
    for key, value in mapping.items():
        try:
            out[key] = check_entry(key, value)
        except Damaged as exc:
            problems.append(f"{what} {terminal_safe(repr(key)[:60])}: {exc}")
    return out


def keep_items(items: list, check_item: Callable[[Any], Any], problems: list[str],
               what: str = "item") -> list:
    """The items of `items` that `check_item` accepts (its result); one line in `problems` for
    each it refuses with Damaged."""
    out = []
    for i, item in enumerate(items, 1):
        try:
            out.append(check_item(item))
        except Damaged as exc:
            problems.append(f"{what} {i}: {exc}")
    return out


# --------------------------------------------------------------------------- writing

_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(data: Any) -> str:
    """`data` as indented JSON text. Non-ASCII text stays readable; a lone surrogate (a file
    name byte that is not UTF-8) is written as a \\uXXXX escape, which reads back the same."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def write_text_atomic(path: str | os.PathLike, text: str, *, private: bool = False) -> None:
    """Write `text` (UTF-8) to `path` atomically: a temp file in the same folder, fsynced, then
    os.replace, so a crash leaves the old file or the new one, never half of either."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if private:
            os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | os.PathLike, data: Any, *, private: bool = False) -> None:
    """Write `data` as JSON (`dumps`) to `path` atomically, creating its folder.

    `private=True` makes the file readable by its owner only (it may hold a token)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, dumps(data), private=private)


def write_cache(path: str | os.PathLike, data: Any) -> bool:
    """Write a cache file; a failure (a read-only or full disk) is logged, never raised: the
    cache is only rebuilt next time. True when it was written."""
    try:
        write_json_atomic(path, data)
        return True
    except (OSError, ValueError) as exc:
        log.info("cache %s not written: %s", path, exc)
        return False
