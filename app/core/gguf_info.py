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

from app.core.fileops import SpecialFile, open_regular
from app.core.safetext import terminal_safe
from app.core.gguf_format import (ARRAY_TYPE, DEFAULT_ALIGNMENT, FILE_TYPE_GUESSED, FILE_TYPES,
                                     FOREIGN_FORMATS, GGML_TYPES, GGUF_MAGIC, GGUFError,
                                     IncompleteHeader, INT64_MAX, INT_ARRAY_KEEP, INT_TYPES,
                                     KEEP_STRING_BYTES, MAX_ARRAY_DEPTH, MAX_ARRAY_STRINGS,
                                     MAX_DIMS, MAX_KEY_BYTES, MAX_KV_COUNT, MAX_NESTED_ARRAYS,
                                     MAX_TENSOR_COUNT, MAX_TENSOR_NAME_BYTES, os_reason, quote,
                                     Reader, STRING_TYPE, TOKEN_CHECKPOINT, VALUE_TYPES)

__all__ = ["FILE_TYPES", "GGML_TYPES", "GGUF_MAGIC", "GGUFError", "IncompleteHeader", "ModelInfo",
           "inspect", "inspect_file", "is_gguf", "open_model_file"]

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
        raise GGUFError(display, os_reason(exc)) from None
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
        raise GGUFError(display, os_reason(exc)) from None


def inspect_prefix(data: bytes, file_size: int, name: str) -> ModelInfo:
    """Inspect a model from the first bytes of its file (e.g. a Range request) and its full size.

    Every check of inspect() applies, against `file_size`. Raises IncompleteHeader when `data`
    ends before the header does (ask for more bytes), GGUFError naming `name` otherwise."""
    import io

    return _Parser(io.BytesIO(data), Path(name), name, size=file_size, prefix=True).parse()


class _Parser:
    def __init__(self, f, path, display: str, *, size: int | None = None, prefix: bool = False):
        self.path, self.display = Path(path), display
        self.size = os.fstat(f.fileno()).st_size if size is None else size
        self.r = Reader(f, display, self.size, prefix)
        self.metadata: dict[str, object] = {}
        self.int_arrays: dict[str, int] = {}      # per-layer int arrays -> their maximum
        self.tokens: tuple[int, int, list[int]] | None = None  # (start, count, checkpoints)
        self.array_strings = 0  # strings walked so far, capped: each costs Python work
        self.summarised: set[str] = set()  # string values too long to keep

    def _count_strings(self, key: str, count: int) -> None:
        self.array_strings += count
        if self.array_strings > MAX_ARRAY_STRINGS:
            raise self.error(f"implausibly many strings in arrays (at {quote(key)}; "
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
            for prefix, what in FOREIGN_FORMATS:
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
            raise self.error(f"corrupt: metadata key {quote(key)} appears twice")
        vtype = r.u32(f"the type of metadata {quote(key)}")
        if vtype not in VALUE_TYPES:
            raise self.error(f"corrupt: metadata {quote(key)} has unknown value type {vtype}")
        what = f"the value of metadata {quote(key)}"
        if vtype == STRING_TYPE:
            value = r.raw_string(what, KEEP_STRING_BYTES)
            if isinstance(value, int):
                self.summarised.add(key)
                self.metadata[key] = f"[string of {value:,} bytes]"
            else:
                self.metadata[key] = value.decode("utf-8", errors="replace")
        elif vtype == ARRAY_TYPE:
            self.metadata[key] = self._array(key)
        else:
            self.metadata[key] = r.scalar(vtype, what)

    def _array(self, key: str) -> str:
        r = self.r
        etype = r.u32(f"the element type of array {quote(key)}")
        if etype not in VALUE_TYPES:
            raise self.error(f"corrupt: array {quote(key)} has unknown element type {etype}")
        count = r.u64(f"the length of array {quote(key)}")
        ename, fmt, esize = VALUE_TYPES[etype]
        r.check_fits(count * esize, f"array {quote(key)} of {count:,} {ename}")
        summary = f"[array of {count:,} {ename}]"
        what = f"array {quote(key)}"
        if etype == STRING_TYPE:
            self._count_strings(key, count)

            def element(i: int) -> str:
                return f"element {i} of array {quote(key)}"
            if key == "tokenizer.ggml.tokens":
                checkpoints = []
                for start in range(0, count, TOKEN_CHECKPOINT):
                    checkpoints.append(r.pos)
                    r.skip_strings(min(TOKEN_CHECKPOINT, count - start), element, start)
                self.tokens = (checkpoints[0] if checkpoints else r.pos, count, checkpoints)
            else:
                r.skip_strings(count, element)
        elif etype == ARRAY_TYPE:
            self._nested_arrays(key, count)
        elif (etype in INT_TYPES and count <= INT_ARRAY_KEEP and key.endswith(
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
        where = f"a nested array in {quote(key)}"
        type_what, length_what = f"the element type of {where}", f"the length of {where}"
        while stack:
            if stack[-1] == 0:
                stack.pop()
                continue
            stack[-1] -= 1
            walked += 1
            if walked > MAX_NESTED_ARRAYS:
                raise self.error(f"corrupt: array {quote(key)} holds more than "
                                 f"{MAX_NESTED_ARRAYS:,} nested arrays")
            etype = r.u32(type_what)
            if etype not in VALUE_TYPES:
                raise self.error(f"corrupt: {where} has unknown element type {etype}")
            n = r.u64(length_what)
            ename, _, esize = VALUE_TYPES[etype]
            if r.pos + n * esize > r.limit:
                r.check_fits(n * esize, f"{where} of {n:,} {ename}")
            if etype == ARRAY_TYPE:
                if len(stack) >= MAX_ARRAY_DEPTH:
                    raise self.error(f"corrupt: array {quote(key)} nests arrays more than "
                                     f"{MAX_ARRAY_DEPTH} deep")
                stack.append(n)
            elif etype == STRING_TYPE:
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
                raise self.error(f"corrupt: tensor {quote(name)} appears twice")
            names.add(name)
            where = f"the info of tensor {quote(name)}"
            n_dims = r.u32(where)
            if n_dims > MAX_DIMS:
                raise self.error(f"corrupt: tensor {quote(name)} has {n_dims:,} dimensions "
                                 f"(at most {MAX_DIMS})")
            r.ensure(8 * n_dims + 12, where)
            dims = struct.unpack_from(f"<{n_dims}Q", r.buf, r.off)
            r.off += 8 * n_dims
            nelements = 1
            for d in dims:
                if d == 0 or d > INT64_MAX:
                    raise self.error(f"corrupt: tensor {quote(name)} has an invalid shape "
                                     f"{list(dims)}")
                nelements *= d
            if nelements > INT64_MAX:
                raise self.error(f"corrupt: tensor {quote(name)} has too many elements "
                                 f"(shape {list(dims)})")
            gtype = r.u32(where)
            offset = r.u64(where)
            if gtype not in GGML_TYPES:
                raise self.error(f"tensor {quote(name)} has an unknown or unsupported ggml type "
                                 f"{gtype}")
            tname, block, type_size = GGML_TYPES[gtype]
            row = dims[0] if dims else 1
            if row % block:
                raise self.error(f"corrupt: tensor {quote(name)} of type {tname} has rows of "
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
                raise self.error(f"corrupt: tensor {quote(name)} starts at offset {offset:,}, "
                                 f"which is not a multiple of the alignment {alignment}")
            end = data_start + offset + nbytes
            if end > size:
                raise self.error(f"truncated: tensor data for {quote(name)} ends at byte {end:,} "
                                 f"but the file has {size:,} bytes")
        extents = sorted(extents)
        for (o1, n1, name1), (o2, _, name2) in zip(extents, extents[1:]):
            if o1 + n1 > o2:
                raise self.error(f"corrupt: the data of tensors {quote(name1)} and {quote(name2)} "
                                 "overlap")

    def _token(self, index: object) -> str | None:
        """The string of token `index`, found again from the nearest checkpoint."""
        if self.tokens is None or not isinstance(index, int):
            return None
        _, count, checkpoints = self.tokens
        if not 0 <= index < count:
            return None
        r = self.r
        block = index // TOKEN_CHECKPOINT
        r.seek(checkpoints[block])
        first = block * TOKEN_CHECKPOINT
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
            raise self.error(f"corrupt: {terminal_safe(arch)}.block_count is 0 "
                             "(a model needs at least one layer)")

        file_type = int_of("general.file_type")
        quantization = None
        if file_type is not None:
            quantization = FILE_TYPES.get(file_type & ~FILE_TYPE_GUESSED)
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
