"""Read and validate the header of a GGUF file → `ModelInfo`, or a `GGUFError` a person can act on.

Only the header is read (metadata key/value pairs and tensor infos), through a small buffer
with bounded reads; tensor data is never touched, only its extent is checked against the file.
Every length and count is checked against the bytes left in the file *before* anything is
allocated or looped over, so truncated, foreign or hostile files fail fast with a message
naming the file and what is wrong — never a hang, a huge allocation or a crash.

Pure standard library (no numpy, no gguf.GGUFReader, which memory-maps and trusts the file).
Layout (GGUF v2/v3, little-endian): magic b"GGUF", version u32, tensor_count u64,
kv_count u64, kv pairs, tensor infos, padding to `general.alignment`, tensor data.
"""

from __future__ import annotations

import math
import os
import struct
from collections import Counter
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

from app.core.safetext import terminal_safe
from app.core.fileops import SpecialFile, open_regular

__all__ = ["GGUF_MAGIC", "GGUFError", "ModelInfo", "inspect", "inspect_file", "is_gguf",
           "open_model_file"]

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_HEADER_BYTES = 256 * 1024 * 1024  # the header may not exceed min(file size, this)
MAX_KV_COUNT = 65_536                 # real models have < 100 metadata entries
MAX_TENSOR_COUNT = 1_000_000          # real models have < 5,000 tensors
MAX_KEY_BYTES = 65_535                # the GGUF spec's limit on key length
MAX_TENSOR_NAME_BYTES = 63            # llama.cpp: name length must be < GGML_MAX_NAME (64)
MAX_DIMS = 4                          # GGML_MAX_DIMS
MAX_ARRAY_DEPTH = 4                   # nesting of arrays of arrays (llama.cpp supports none)
MAX_NESTED_ARRAYS = 10_000            # total inner arrays walked in one file
MAX_ARRAY_STRINGS = 10_000_000        # total strings in arrays (Llama 3 has ~410,000)
KEEP_STRING_BYTES = 1024 * 1024       # longer string values are summarised, not kept
INT_ARRAY_KEEP = 65_536               # per-layer int arrays (head counts) decoded up to this
_CHUNK = 1024 * 1024
_INT64_MAX = 2**63 - 1
_TOKEN_CHECKPOINT = 1024              # remember the position of every 1024th token

# GGUF metadata value types: id -> (name, struct format or None for string/array, size)
_STRING, _ARRAY, _BOOL = 8, 9, 7
_VALUE_TYPES: dict[int, tuple[str, str | None, int]] = {
    0: ("u8", "B", 1), 1: ("i8", "b", 1), 2: ("u16", "H", 2), 3: ("i16", "h", 2),
    4: ("u32", "I", 4), 5: ("i32", "i", 4), 6: ("f32", "f", 4), 7: ("bool", "B", 1),
    8: ("str", None, 8), 9: ("array", None, 12),
    10: ("u64", "Q", 8), 11: ("i64", "q", 8), 12: ("f64", "d", 8),
}
_INT_TYPES = frozenset({0, 1, 2, 3, 4, 5, 10, 11})
_SCALARS = {t: struct.Struct("<" + fmt) for t, (_, fmt, _) in _VALUE_TYPES.items() if fmt}

# ggml tensor types: id -> (name, elements per block, bytes per block); from ggml / gguf.constants
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17), 40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18),
}

# llama_ftype (general.file_type) -> the name people use for the quantization
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16", 7: "Q8_0", 8: "Q5_0",
    9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S",
    15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS",
    21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S",
    27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    33: "Q4_0_4_4", 34: "Q4_0_4_8", 35: "Q4_0_8_8", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}
_FILE_TYPE_GUESSED = 1024

_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_F32 = struct.Struct("<f")

# Files that are often mistaken for models: first bytes -> what they are
_FOREIGN = (
    (b"lmgg", "an old GGML model from before GGUF; convert it to GGUF with llama.cpp"),
    (b"fmgg", "an old GGMF model from before GGUF; convert it to GGUF with llama.cpp"),
    (b"tjgg", "an old GGJT model from before GGUF; convert it to GGUF with llama.cpp"),
    (b"version https://git-lfs", "a Git LFS pointer, not the model itself; fetch it with git lfs"),
    (b"<!DOCTYPE", "a web page, not a model (a failed download?)"),
    (b"<html", "a web page, not a model (a failed download?)"),
    (b"PK\x03\x04", "a zip archive (a PyTorch checkpoint?), not a GGUF model"),
)


class GGUFError(Exception):
    """A file that is not a usable GGUF model; str() is "<path as given>: <what is wrong>"."""

    def __init__(self, path: str | os.PathLike[str], reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(self.path, reason)  # args round-trip through pickle

    def __str__(self) -> str:
        return f"{_clean(self.path)}: {self.reason}"


class IncompleteHeader(GGUFError):
    """inspect_prefix() ran out of bytes before the header ended: fetch more and try again."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    file_size: int
    gguf_version: int
    architecture: str | None
    name: str | None
    parameters: int
    file_type: int | None
    quantization: str
    context_length: int | None
    embedding_length: int | None
    block_count: int | None
    feed_forward_length: int | None
    head_count: int | None
    head_count_kv: int | None
    vocab_size: int | None
    tokenizer_model: str | None
    bos_token_id: int | None
    eos_token_id: int | None
    bos_token: str | None
    eos_token: str | None
    chat_template: str | None
    tensor_count: int
    metadata: dict[str, object] = field(repr=False)
    alignment: int = DEFAULT_ALIGNMENT
    data_offset: int = 0                          # where tensor data starts in the file
    tensor_types: dict[str, int] = field(default_factory=dict)  # ggml type name -> tensors

    @property
    def parameters_label(self) -> str:
        """Short size label: "125M", "1.1B", "7B", "70B"."""
        return _short_count(self.parameters)

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe dict of every field (plus parameters_label)."""
        out: dict[str, object] = {f.name: _json_safe(getattr(self, f.name)) for f in fields(self)}
        out["parameters_label"] = self.parameters_label
        return out


def _short_count(n: int) -> str:
    for unit, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale * 0.9995:  # 999,960,000 is "1B", 999,000,000 is "999M"
            value = n / scale
            text = f"{value:.1f}" if value < 9.95 else f"{value:.0f}"
            return (text[:-2] if text.endswith(".0") else text) + unit
    return str(n)


def _json_safe(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def open_model_file(path: str | os.PathLike[str]):
    """`path` opened for reading (an unbuffered binary file), refused with GGUFError unless it
    is a regular file. The open does not block (a FIFO or a device put in the file's place
    cannot hang it) and the check is made on the open descriptor, so whatever is read through
    the returned file is the file that was checked — read it, inspect it and copy it from this
    one file, not by opening the path again."""
    display = os.fspath(path)
    try:
        return os.fdopen(open_regular(path), "rb", buffering=0)
    except SpecialFile as exc:
        reason = ("is a directory, not a model file" if exc.kind == "a directory"
                  else f"is not a regular file: it is {exc.kind}")
        raise GGUFError(display, reason) from None
    except OSError as exc:
        raise GGUFError(display, _os_reason(exc)) from None
    except ValueError as exc:  # e.g. an embedded NUL in the path
        raise GGUFError(display, f"cannot be read: {exc}") from None


def is_gguf(path: str | os.PathLike[str]) -> bool:
    """True if `path` is a regular file starting with the GGUF magic (nothing else is checked)."""
    try:
        with open_model_file(path) as f:
            return f.read(4) == GGUF_MAGIC
    except (GGUFError, OSError, ValueError):
        return False


def inspect(path: str | os.PathLike[str]) -> ModelInfo:
    """Read and validate the header of the GGUF file at `path`; raise GGUFError if it is unusable."""
    with open_model_file(path) as f:
        return inspect_file(f, path)


def inspect_file(f, path: str | os.PathLike[str]) -> ModelInfo:
    """inspect() of a file already opened by open_model_file (`path` names it in messages);
    it is read from its start, and left open."""
    display = os.fspath(path)
    try:
        f.seek(0)
        return _Parser(f, path, display).parse()
    except OSError as exc:
        raise GGUFError(display, _os_reason(exc)) from None


def inspect_prefix(data: bytes, file_size: int, name: str) -> ModelInfo:
    """Inspect a model from the first bytes of its file (e.g. a Range request) and its full size.

    Every check of inspect() applies, against `file_size`. Raises IncompleteHeader when `data`
    ends before the header does (ask for more bytes), GGUFError naming `name` otherwise."""
    import io

    return _Parser(io.BytesIO(data), Path(name), name, size=file_size, prefix=True).parse()


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "does not exist"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a model file"
    if isinstance(exc, PermissionError):
        return "cannot be read: permission denied"
    return f"cannot be read: {(exc.strerror or str(exc)).lower()}"


def _cap() -> str:
    mib, rest = divmod(MAX_HEADER_BYTES, 2**20)
    return f"{mib} MiB" if mib and not rest else f"{MAX_HEADER_BYTES:,} bytes"


class _Reader:
    """Bounded little-endian reads over a raw file through one buffer.

    Invariant: the file's position is `base + len(buf)`; `buf[off:]` is unread."""

    def __init__(self, f, display: str, size: int, prefix: bool = False):
        self.f, self.display, self.size = f, display, size
        self.prefix = prefix  # f holds only the start of a file of `size` bytes
        self.limit = min(size, MAX_HEADER_BYTES)
        self.buf, self.base, self.off = b"", 0, 0

    @property
    def pos(self) -> int:
        return self.base + self.off

    def error(self, reason: str) -> GGUFError:
        return GGUFError(self.display, reason)

    def check_fits(self, nbytes: int, what: str) -> None:
        """Fail unless `nbytes` more bytes (a lower bound for `what`) fit in the header."""
        pos = self.pos
        if pos + nbytes > self.size:
            raise self.error(f"corrupt or truncated: at least {nbytes:,} bytes are needed for {what} "
                             f"at byte {pos:,}, but only {self.size - pos:,} remain in the file")
        if pos + nbytes > self.limit:
            raise self.error(f"header too large: {what} would end past the first "
                             f"{_cap()} of the file; this is not a sane model")

    def _short(self, n: int, what: str) -> GGUFError:
        if self.pos + n > self.size:
            return self.error(f"truncated: the file ends inside {what} "
                              f"(at byte {self.pos:,}; the file has {self.size:,} bytes)")
        return self.error(f"header too large: {what} lies past the first "
                          f"{_cap()} of the file; this is not a sane model")

    def ensure(self, n: int, what: str) -> None:
        """Make buf[off:off+n] available, reading more of the file if needed."""
        if self.off + n <= len(self.buf):
            return
        if self.pos + n > self.limit:
            raise self._short(n, what)
        tail = self.buf[self.off:]
        end = self.base + len(self.buf)
        want = min(max(n - len(tail), _CHUNK), self.limit - end)  # never buffer past the cap
        parts, got = [tail], 0
        while got < want:
            data = self.f.read(want - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        self.base += self.off
        self.buf, self.off = b"".join(parts), 0
        if len(self.buf) < n:
            if self.prefix:
                raise IncompleteHeader(self.display, f"the bytes fetched end inside {what}")
            raise self.error(f"truncated: the file got shorter while {what} was being read")

    def skip(self, n: int, what: str) -> None:
        if self.off + n <= len(self.buf):
            self.off += n
            return
        if self.pos + n > self.limit:
            raise self._short(n, what)
        target = self.pos + n
        self.f.seek(target)
        self.buf, self.base, self.off = b"", target, 0

    def seek(self, target: int) -> None:
        self.f.seek(target)
        self.buf, self.base, self.off = b"", target, 0

    def u32(self, what: str) -> int:
        self.ensure(4, what)
        (v,) = _U32(self.buf, self.off)
        self.off += 4
        return v

    def u64(self, what: str) -> int:
        self.ensure(8, what)
        (v,) = _U64(self.buf, self.off)
        self.off += 8
        return v

    def scalar(self, vtype: int, what: str):
        s = _SCALARS[vtype]
        self.ensure(s.size, what)
        (v,) = s.unpack_from(self.buf, self.off)
        self.off += s.size
        if vtype == _BOOL:
            return bool(v)
        if vtype == 6:
            return _shortest_f32(self.buf[self.off - 4:self.off], v)
        return v

    def raw_string(self, what: str, max_keep: int | None = None) -> bytes | int:
        """The bytes of a string; its length instead (skipped) if longer than `max_keep`."""
        n = self.u64(f"the length of {what}")
        self.check_fits(n, what)
        if max_keep is not None and n > max_keep:
            self.skip(n, what)
            return n
        self.ensure(n, what)
        data = self.buf[self.off:self.off + n]
        self.off += n
        return data

    def skip_strings(self, count: int, what: Callable[[int], str], first: int = 0) -> None:
        """Walk over `count` strings (u64 length + bytes) without decoding them."""
        buf, off, blen = self.buf, self.off, len(self.buf)
        i = 0
        while i < count:
            if off + 8 <= blen:
                end = off + 8 + _U64(buf, off)[0]
                if end <= blen:  # the fast path: the whole string is in the buffer
                    off = end
                    i += 1
                    continue
            self.off = off  # slow path: read more, or fail with a message
            desc = what(first + i)
            n = self.u64(f"the length of {desc}")
            self.check_fits(n, desc)
            self.skip(n, desc)
            buf, off, blen = self.buf, self.off, len(self.buf)
            i += 1
        self.off = off


_clean = terminal_safe  # a message stays one line, whatever the file's names hold


def _q(text: str) -> str:
    """A name from the file, quoted and capped for a message."""
    text = _clean(text)
    return f"'{text[:77]}...'" if len(text) > 80 else f"'{text}'"


def _shortest_f32(raw: bytes, value: float) -> float:
    """The shortest decimal that is the same float32 (1e-05, not 9.999999747378752e-06)."""
    if not math.isfinite(value):
        return value
    for digits in range(6, 10):
        candidate = float(f"{value:.{digits}g}")
        if _F32.pack(candidate) == raw:
            return candidate
    return value


class _Parser:
    def __init__(self, f, path, display: str, *, size: int | None = None, prefix: bool = False):
        self.path, self.display = Path(path), display
        self.size = os.fstat(f.fileno()).st_size if size is None else size
        self.r = _Reader(f, display, self.size, prefix)
        self.metadata: dict[str, object] = {}
        self.int_arrays: dict[str, int] = {}      # per-layer int arrays -> their maximum
        self.tokens: tuple[int, int, list[int]] | None = None  # (start, count, checkpoints)
        self.array_strings = 0  # strings walked so far, capped: each costs Python work
        self.summarised: set[str] = set()  # string values too long to keep

    def _count_strings(self, key: str, count: int) -> None:
        self.array_strings += count
        if self.array_strings > MAX_ARRAY_STRINGS:
            raise self.error(f"implausibly many strings in arrays (at {_q(key)}; "
                             f"the limit is {MAX_ARRAY_STRINGS:,})")

    def error(self, reason: str) -> GGUFError:
        return GGUFError(self.display, reason)

    # -- the fixed part -------------------------------------------------------------------
    def _preamble(self) -> tuple[int, int, int]:
        r, size = self.r, self.size
        if size == 0:
            raise self.error("is empty (0 bytes), not a model")
        r.ensure(min(size, 64), "the magic number")
        head = r.buf[:4]
        if head != GGUF_MAGIC:
            if size < 4 and GGUF_MAGIC.startswith(head):
                raise self.error(f"truncated: the file has only {size} bytes")
            start = r.buf[:64]
            for prefix, what in _FOREIGN:
                if start.startswith(prefix) or start.lstrip().lower().startswith(prefix.lower()):
                    raise self.error(f"not a GGUF file: {what}")
            if start[8:10] == b'{"':
                raise self.error("not a GGUF file: a safetensors file; convert it to GGUF "
                                 "with llama.cpp's convert_hf_to_gguf.py")
            raise self.error(f"not a GGUF file (starts with {head!r})")
        r.off = 4
        version = r.u32("the version number")
        if version not in (2, 3):
            swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
            if swapped in (1, 2, 3):
                raise self.error(f"a big-endian GGUF file (version {swapped}), which is not "
                                 "supported; use the little-endian file for this model")
            if version == 1:
                raise self.error("GGUF version 1 is obsolete and no longer supported; "
                                 "get a copy converted with a recent llama.cpp")
            raise self.error(f"unknown GGUF version {version} (versions 2 and 3 are supported)")
        tensor_count = r.u64("the tensor count")
        kv_count = r.u64("the metadata count")
        # Minimum sizes: a kv pair is >= 13 bytes (key length, type, 1-byte value); a tensor
        # info is >= 24 bytes (name length, n_dims, type, offset).
        r.check_fits(kv_count * 13 + tensor_count * 24,
                     f"{kv_count:,} metadata entries and {tensor_count:,} tensor infos")
        if kv_count > MAX_KV_COUNT:
            raise self.error(f"implausibly many metadata entries ({kv_count:,}; "
                             f"the limit is {MAX_KV_COUNT:,})")
        if tensor_count > MAX_TENSOR_COUNT:
            raise self.error(f"implausibly many tensors ({tensor_count:,}; "
                             f"the limit is {MAX_TENSOR_COUNT:,})")
        return version, tensor_count, kv_count

    # -- metadata -------------------------------------------------------------------------
    def _kv(self, index: int, kv_count: int) -> None:
        r = self.r
        where = f"the key of metadata entry {index + 1} of {kv_count}"
        n = r.u64(where)
        if n == 0 or n > MAX_KEY_BYTES:
            r.check_fits(n, where)  # an absurd length is reported as corruption first
            raise self.error(f"corrupt: {where} is {n:,} bytes long (1 to {MAX_KEY_BYTES:,} allowed)")
        r.check_fits(n, where)
        r.ensure(n, where)
        raw = r.buf[r.off:r.off + n]
        r.off += n
        try:
            key = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"corrupt: {where} is not valid UTF-8 ({raw[:40]!r})") from None
        if key in self.metadata:
            raise self.error(f"corrupt: metadata key {_q(key)} appears twice")
        vtype = r.u32(f"the type of metadata {_q(key)}")
        if vtype not in _VALUE_TYPES:
            raise self.error(f"corrupt: metadata {_q(key)} has unknown value type {vtype}")
        what = f"the value of metadata {_q(key)}"
        if vtype == _STRING:
            value = r.raw_string(what, KEEP_STRING_BYTES)
            if isinstance(value, int):
                self.summarised.add(key)
                self.metadata[key] = f"[string of {value:,} bytes]"
            else:
                self.metadata[key] = value.decode("utf-8", errors="replace")
        elif vtype == _ARRAY:
            self.metadata[key] = self._array(key)
        else:
            self.metadata[key] = r.scalar(vtype, what)

    def _array(self, key: str) -> str:
        r = self.r
        etype = r.u32(f"the element type of array {_q(key)}")
        if etype not in _VALUE_TYPES:
            raise self.error(f"corrupt: array {_q(key)} has unknown element type {etype}")
        count = r.u64(f"the length of array {_q(key)}")
        ename, fmt, esize = _VALUE_TYPES[etype]
        r.check_fits(count * esize, f"array {_q(key)} of {count:,} {ename}")
        summary = f"[array of {count:,} {ename}]"
        what = f"array {_q(key)}"
        if etype == _STRING:
            self._count_strings(key, count)

            def element(i: int) -> str:
                return f"element {i} of array {_q(key)}"
            if key == "tokenizer.ggml.tokens":
                checkpoints = []
                for start in range(0, count, _TOKEN_CHECKPOINT):
                    checkpoints.append(r.pos)
                    r.skip_strings(min(_TOKEN_CHECKPOINT, count - start), element, start)
                self.tokens = (checkpoints[0] if checkpoints else r.pos, count, checkpoints)
            else:
                r.skip_strings(count, element)
        elif etype == _ARRAY:
            self._nested_arrays(key, count)
        elif (etype in _INT_TYPES and count <= INT_ARRAY_KEEP and key.endswith(
                (".attention.head_count", ".attention.head_count_kv", ".feed_forward_length"))):
            r.ensure(count * esize, what)
            values = struct.unpack_from(f"<{count}{fmt}", r.buf, r.off)
            r.off += count * esize
            self.int_arrays[key] = max(values, default=0)
        else:
            r.skip(count * esize, what)
        return summary

    def _nested_arrays(self, key: str, count: int) -> None:
        """Walk an array of arrays iteratively, with a cap on depth and on inner arrays."""
        r = self.r
        stack = [count]  # elements left to read at each level; all levels hold arrays
        walked = 0
        where = f"a nested array in {_q(key)}"
        type_what, length_what = f"the element type of {where}", f"the length of {where}"
        while stack:
            if stack[-1] == 0:
                stack.pop()
                continue
            stack[-1] -= 1
            walked += 1
            if walked > MAX_NESTED_ARRAYS:
                raise self.error(f"corrupt: array {_q(key)} holds more than "
                                 f"{MAX_NESTED_ARRAYS:,} nested arrays")
            etype = r.u32(type_what)
            if etype not in _VALUE_TYPES:
                raise self.error(f"corrupt: {where} has unknown element type {etype}")
            n = r.u64(length_what)
            ename, _, esize = _VALUE_TYPES[etype]
            if r.pos + n * esize > r.limit:
                r.check_fits(n * esize, f"{where} of {n:,} {ename}")
            if etype == _ARRAY:
                if len(stack) >= MAX_ARRAY_DEPTH:
                    raise self.error(f"corrupt: array {_q(key)} nests arrays more than "
                                     f"{MAX_ARRAY_DEPTH} deep")
                stack.append(n)
            elif etype == _STRING:
                self._count_strings(key, n)
                r.skip_strings(n, lambda i: f"element {i} of {where}")
            else:
                r.skip(n * esize, where)

    # -- tensor infos ---------------------------------------------------------------------
    def _tensors(self, tensor_count: int):
        r = self.r
        names: set[str] = set()
        extents: list[tuple[int, int, str]] = []  # (offset, nbytes, name)
        parameters = 0
        by_type: Counter[int] = Counter()
        elements_2d: Counter[int] = Counter()
        for i in range(tensor_count):
            where = f"tensor info {i + 1} of {tensor_count}"
            n = r.u64(f"the name of {where}")
            r.check_fits(n, f"the name of {where}")
            if n == 0 or n > MAX_TENSOR_NAME_BYTES:
                raise self.error(f"corrupt: the name of {where} is {n:,} bytes long "
                                 f"(1 to {MAX_TENSOR_NAME_BYTES} allowed)")
            r.ensure(n, f"the name of {where}")
            raw = r.buf[r.off:r.off + n]
            r.off += n
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise self.error(f"corrupt: the name of {where} is not valid UTF-8") from None
            if name in names:
                raise self.error(f"corrupt: tensor {_q(name)} appears twice")
            names.add(name)
            where = f"the info of tensor {_q(name)}"
            n_dims = r.u32(where)
            if n_dims > MAX_DIMS:
                raise self.error(f"corrupt: tensor {_q(name)} has {n_dims:,} dimensions "
                                 f"(at most {MAX_DIMS})")
            r.ensure(8 * n_dims + 12, where)
            dims = struct.unpack_from(f"<{n_dims}Q", r.buf, r.off)
            r.off += 8 * n_dims
            nelements = 1
            for d in dims:
                if d == 0 or d > _INT64_MAX:
                    raise self.error(f"corrupt: tensor {_q(name)} has an invalid shape "
                                     f"{list(dims)}")
                nelements *= d
            if nelements > _INT64_MAX:
                raise self.error(f"corrupt: tensor {_q(name)} has too many elements "
                                 f"(shape {list(dims)})")
            gtype = r.u32(where)
            offset = r.u64(where)
            if gtype not in GGML_TYPES:
                raise self.error(f"tensor {_q(name)} has an unknown or unsupported ggml type "
                                 f"{gtype}")
            tname, block, type_size = GGML_TYPES[gtype]
            row = dims[0] if dims else 1
            if row % block:
                raise self.error(f"corrupt: tensor {_q(name)} of type {tname} has rows of "
                                 f"{row:,} elements, not a multiple of the block size {block}")
            extents.append((offset, nelements // block * type_size, name))
            parameters += nelements
            by_type[gtype] += 1
            if n_dims == 2:
                elements_2d[gtype] += nelements
        return extents, parameters, by_type, elements_2d

    def _check_data(self, extents, data_start: int, alignment: int) -> None:
        size = self.size
        if extents and data_start > size:
            raise self.error(f"truncated: tensor data should start at byte {data_start:,} "
                             f"but the file has {size:,} bytes")
        for offset, nbytes, name in extents:
            if offset % alignment:
                raise self.error(f"corrupt: tensor {_q(name)} starts at offset {offset:,}, "
                                 f"which is not a multiple of the alignment {alignment}")
            end = data_start + offset + nbytes
            if end > size:
                raise self.error(f"truncated: tensor data for {_q(name)} ends at byte {end:,} "
                                 f"but the file has {size:,} bytes")
        extents = sorted(extents)
        for (o1, n1, name1), (o2, _, name2) in zip(extents, extents[1:]):
            if o1 + n1 > o2:
                raise self.error(f"corrupt: the data of tensors {_q(name1)} and {_q(name2)} "
                                 "overlap")

    def _token(self, index: object) -> str | None:
        """The string of token `index`, found again from the nearest checkpoint."""
        if self.tokens is None or not isinstance(index, int):
            return None
        _, count, checkpoints = self.tokens
        if not 0 <= index < count:
            return None
        r = self.r
        block = index // _TOKEN_CHECKPOINT
        r.seek(checkpoints[block])
        first = block * _TOKEN_CHECKPOINT
        r.skip_strings(index - first, lambda i: f"token {i}", first)
        raw = r.raw_string(f"token {index}", KEEP_STRING_BYTES)
        return None if isinstance(raw, int) else raw.decode("utf-8", errors="replace")

    # -- everything -----------------------------------------------------------------------
    def parse(self) -> ModelInfo:
        version, tensor_count, kv_count = self._preamble()
        for i in range(kv_count):
            self._kv(i, kv_count)
        md = self.metadata

        alignment = md.get("general.alignment", DEFAULT_ALIGNMENT)
        if "general.alignment" in md and (type(alignment) is not int
                                          or alignment <= 0 or alignment & (alignment - 1)):
            raise self.error(f"corrupt: general.alignment is {alignment!r}, "
                             "not a power of two")
        extents, parameters, by_type, elements_2d = self._tensors(tensor_count)
        header_end = self.r.pos
        data_start = -(-header_end // alignment) * alignment
        self._check_data(extents, data_start, alignment)

        arch = md.get("general.architecture")
        arch = arch if isinstance(arch, str) else None

        def int_of(key: str) -> int | None:
            if key in self.int_arrays:
                return self.int_arrays[key]
            v = md.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        def arch_int(suffix: str) -> int | None:
            return int_of(f"{arch}.{suffix}") if arch else None

        block_count = arch_int("block_count")
        if block_count == 0 and tensor_count:
            raise self.error(f"corrupt: {_clean(arch)}.block_count is 0 "
                             "(a model needs at least one layer)")

        file_type = int_of("general.file_type")
        quantization = None
        if file_type is not None:
            quantization = FILE_TYPES.get(file_type & ~_FILE_TYPE_GUESSED)
        if quantization is None:
            weights = elements_2d or Counter({t: c for t, c in by_type.items()})
            quantization = GGML_TYPES[weights.most_common(1)[0][0]][0] if weights else "unknown"

        vocab_size = self.tokens[1] if self.tokens else arch_int("vocab_size")
        bos_id = int_of("tokenizer.ggml.bos_token_id")
        eos_id = int_of("tokenizer.ggml.eos_token_id")
        def text(key: str) -> str | None:
            value = md.get(key)
            return value if isinstance(value, str) and key not in self.summarised else None

        return ModelInfo(
            path=self.path, file_size=self.size, gguf_version=version, architecture=arch,
            name=text("general.name"), parameters=parameters, file_type=file_type, quantization=quantization,
            context_length=arch_int("context_length"),
            embedding_length=arch_int("embedding_length"), block_count=block_count,
            feed_forward_length=arch_int("feed_forward_length"),
            head_count=arch_int("attention.head_count"),
            head_count_kv=arch_int("attention.head_count_kv"),
            vocab_size=vocab_size, tokenizer_model=text("tokenizer.ggml.model"),
            bos_token_id=bos_id, eos_token_id=eos_id,
            bos_token=self._token(bos_id), eos_token=self._token(eos_id),
            chat_template=text("tokenizer.chat_template"), tensor_count=tensor_count,
            metadata=md, alignment=alignment, data_offset=data_start,
            tensor_types={GGML_TYPES[t][0]: c for t, c in by_type.most_common()},
        )
