"""The GGUF format at the byte level: its limits and type tables, the one error type, and a
bounded little-endian reader over a file. `gguf_info` parses a header with these; nothing here
knows what a model is.
"""

from __future__ import annotations

import math
import os
import struct
from typing import Callable

from app.core.memory_plan import format_bytes
from app.core.safetext import terminal_safe

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
INT64_MAX = 2**63 - 1
TOKEN_CHECKPOINT = 1024              # remember the position of every 1024th token

# GGUF metadata value types: id -> (name, struct format or None for string/array, size)
STRING_TYPE, ARRAY_TYPE, BOOL_TYPE = 8, 9, 7
VALUE_TYPES: dict[int, tuple[str, str | None, int]] = {
    0: ("u8", "B", 1), 1: ("i8", "b", 1), 2: ("u16", "H", 2), 3: ("i16", "h", 2),
    4: ("u32", "I", 4), 5: ("i32", "i", 4), 6: ("f32", "f", 4), 7: ("bool", "B", 1),
    8: ("str", None, 8), 9: ("array", None, 12),
    10: ("u64", "Q", 8), 11: ("i64", "q", 8), 12: ("f64", "d", 8),
}
INT_TYPES = frozenset({0, 1, 2, 3, 4, 5, 10, 11})
_SCALARS = {t: struct.Struct("<" + fmt) for t, (_, fmt, _) in VALUE_TYPES.items() if fmt}

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
FILE_TYPE_GUESSED = 1024

_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from
_F32 = struct.Struct("<f")

# Files that are often mistaken for models: first bytes -> what they are
FOREIGN_FORMATS = (
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
        return f"{terminal_safe(self.path)}: {self.reason}"


class IncompleteHeader(GGUFError):
    """inspect_prefix() ran out of bytes before the header ended: fetch more and try again."""


def os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "does not exist"
    if isinstance(exc, IsADirectoryError):
        return "is a directory, not a model file"
    if isinstance(exc, PermissionError):
        return "cannot be read: permission denied"
    return f"cannot be read: {(exc.strerror or str(exc)).lower()}"


def header_cap() -> str:
    return format_bytes(MAX_HEADER_BYTES)  # read at each call: tests lower the cap


class Reader:
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
                             f"{header_cap()} of the file; this is not a sane model")

    def _short(self, n: int, what: str) -> GGUFError:
        if self.pos + n > self.size:
            return self.error(f"truncated: the file ends inside {what} "
                              f"(at byte {self.pos:,}; the file has {self.size:,} bytes)")
        return self.error(f"header too large: {what} lies past the first "
                          f"{header_cap()} of the file; this is not a sane model")

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
        if vtype == BOOL_TYPE:
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




def quote(text: str) -> str:
    """A name from the file, quoted and capped for a message."""
    text = terminal_safe(text)
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
