"""app.core.gguf_info: a valid header reads back right; every malformed file fails fast and clearly."""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from app.core import gguf_format, gguf_info
from app.core.gguf_info import GGUF_MAGIC, GGUFError, ModelInfo, inspect, is_gguf

ROOT = Path(__file__).resolve().parents[2]

# -- a raw GGUF builder, so that every byte offset is known ------------------------------------
STR, ARR, U32, F32, I32 = 8, 9, 4, 6, 5


def s(text: str | bytes) -> bytes:
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv_str(key: str, value: str) -> bytes:
    return s(key) + struct.pack("<I", STR) + s(value)


def kv_u32(key: str, value: int) -> bytes:
    return s(key) + struct.pack("<II", U32, value)


def kv_str_array(key: str, values: list[str]) -> bytes:
    return s(key) + struct.pack("<IIQ", ARR, STR, len(values)) + b"".join(s(v) for v in values)


def kv_f32_array(key: str, values: list[float]) -> bytes:
    return s(key) + struct.pack(f"<IIQ{len(values)}f", ARR, F32, len(values), *values)


def tensor_info(name: str, dims: list[int], gtype: int, offset: int) -> bytes:
    return s(name) + struct.pack(f"<I{len(dims)}QIQ", len(dims), *dims, gtype, offset)


def build(kvs: list[bytes], tensors: list[tuple[str, list[int], int, int]], data_size: int,
          *, version: int = 3, alignment: int = 32) -> tuple[bytes, dict[str, int]]:
    """A GGUF file as bytes, and the offsets of its sections ("kv0", "ti0", "data", ...)."""
    out = bytearray(GGUF_MAGIC + struct.pack("<IQQ", version, len(tensors), len(kvs)))
    marks = {"version": 4, "counts": 8}
    for i, kv in enumerate(kvs):
        marks[f"kv{i}"] = len(out)
        out += kv
    for i, t in enumerate(tensors):
        marks[f"ti{i}"] = len(out)
        out += tensor_info(*t)
    out += bytes(-len(out) % alignment)
    marks["data"] = len(out)
    out += bytes(data_size)
    return bytes(out), marks


TOKENS = ["<unk>", "<s>", "</s>"] + [f"tok{i}" for i in range(61)]
KVS = [
    kv_str("general.architecture", "llama"),   # kv0
    kv_str("general.name", "raw-model"),       # kv1
    kv_u32("llama.block_count", 2),            # kv2
    kv_str_array("tokenizer.ggml.tokens", TOKENS),  # kv3
    kv_f32_array("tokenizer.ggml.scores", [0.5] * len(TOKENS)),  # kv4
    kv_u32("tokenizer.ggml.bos_token_id", 1),  # kv5
    kv_u32("tokenizer.ggml.eos_token_id", 2),  # kv6
]
# token_embd: F32 64x8 = 2048 bytes at 0; attn_q: Q4_0 64x4 = 4 rows x 2 blocks x 18 = 144 bytes
TENSORS = [("token_embd.weight", [64, 8], 0, 0), ("blk.0.attn_q.weight", [64, 4], 2, 2048)]
DATA_SIZE = 2048 + 144


def raw_valid() -> tuple[bytes, dict[str, int]]:
    return build(KVS, TENSORS, DATA_SIZE)


def patched(data: bytes, at: int, fmt: str, *values) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, at, *values)
    return bytes(b)


# -- the valid files ---------------------------------------------------------------------------
def test_raw_file_reads_back(tmp_path: Path) -> None:
    data, _ = raw_valid()
    path = tmp_path / "raw.gguf"
    path.write_bytes(data)
    info = inspect(path)
    assert (info.architecture, info.name, info.block_count, info.vocab_size) == ("llama", "raw-model", 2, 64)
    assert (info.bos_token, info.eos_token) == ("<s>", "</s>")
    assert info.parameters == 64 * 8 + 64 * 4
    assert info.file_type is None
    assert info.quantization == "F32"  # the 2-D type with the most elements
    assert info.tensor_types == {"F32": 1, "Q4_0": 1}
    assert info.metadata["tokenizer.ggml.tokens"] == "[array of 64 str]"
    assert info.metadata["tokenizer.ggml.scores"] == "[array of 64 f32]"


def test_per_layer_head_counts(tmp_path: Path) -> None:
    """Hybrid models store some hyperparameters per layer, as arrays: report the largest."""
    per_layer = s("llama.attention.head_count_kv") + struct.pack("<IIQ4i", ARR, I32, 4, 0, 8, 8, 4)
    path = tmp_path / "hybrid.gguf"
    path.write_bytes(build(KVS + [per_layer], TENSORS, DATA_SIZE)[0])
    info = inspect(path)
    assert info.head_count_kv == 8 and info.head_count is None
    assert info.metadata["llama.attention.head_count_kv"] == "[array of 4 i32]"


@pytest.fixture(scope="module")
def writer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gguf
    import numpy as np

    path = tmp_path_factory.mktemp("valid") / "writer.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("Corral Test")
    w.add_context_length(2048)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_0)
    w.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(997)]
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * len(tokens))
    w.add_token_types([1] * len(tokens))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template("{% for m in messages %}\n{{ m.content }}{% endfor %}")
    w.add_tensor("token_embd.weight", np.zeros((len(tokens), 64), np.float32))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((64, 2 * 18), np.uint8),
                 raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(64, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_writer_file_fields(writer_model: Path) -> None:
    info = inspect(writer_model)
    assert isinstance(info, ModelInfo)
    assert info.path == writer_model and info.file_size == writer_model.stat().st_size
    assert (info.gguf_version, info.architecture, info.name) == (3, "llama", "Corral Test")
    assert info.parameters == 1000 * 64 + 64 * 64 + 64
    assert (info.file_type, info.quantization) == (2, "Q4_0")
    assert (info.context_length, info.embedding_length, info.block_count) == (2048, 64, 1)
    assert (info.feed_forward_length, info.head_count, info.head_count_kv) == (128, 4, 2)
    assert (info.vocab_size, info.tokenizer_model) == (1000, "llama")
    assert (info.bos_token_id, info.eos_token_id, info.bos_token, info.eos_token) == (1, 2, "<s>", "</s>")
    assert info.chat_template.startswith("{% for m in messages %}")
    assert info.tensor_count == 3
    assert info.metadata["llama.attention.layer_norm_rms_epsilon"] == 1e-5
    assert info.metadata["tokenizer.ggml.tokens"] == "[array of 1,000 str]"
    assert len(json.dumps(info.metadata)) < 4000, "the vocabulary is summarised, not kept"
    d = info.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["path"] == str(writer_model) and d["parameters_label"] == info.parameters_label
    assert is_gguf(writer_model)


def test_parameters_label(tmp_path: Path) -> None:
    import dataclasses

    path = tmp_path / "raw.gguf"
    path.write_bytes(raw_valid()[0])
    info = inspect(path)

    def label(n: int) -> str:
        return dataclasses.replace(info, parameters=n).parameters_label
    assert [label(n) for n in (1_100_048_384, 6_738_415_616, 7_000_000_000, 70_553_706_496,
                               124_439_808, 999_960_000, 999_000_000, 2_656, 0)] == [
        "1.1B", "6.7B", "7B", "71B", "124M", "1B", "999M", "2.7K", "0"]


def test_ggml_type_table_matches_gguf() -> None:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

    for t, (name, block, size) in gguf_info.GGML_TYPES.items():
        assert GGMLQuantizationType(t).name == name
        assert GGML_QUANT_SIZES[GGMLQuantizationType(t)] == (block, size)
    for ft, name in gguf_info.FILE_TYPES.items():
        if ft in LlamaFileType._value2member_map_:
            assert LlamaFileType(ft).name.split("_", 1)[1] == name


def test_core_module_needs_no_numpy() -> None:
    code = ("import sys; sys.modules['numpy'] = None; import app.core.gguf_info as g; "
            "assert 'gguf' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# -- malformed files ---------------------------------------------------------------------------
def _malformed() -> dict[str, tuple[bytes, str]]:
    """name -> (file contents, a fragment the message must contain)."""
    v, m = raw_valid()
    png = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
           + struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0) + b"\x1f\x15\xc4\x89")
    name_len_at = m["kv1"] + 8 + len("general.name") + 4
    tokens_count_at = m["kv3"] + 8 + len("tokenizer.ggml.tokens") + 8
    ti1 = m["ti1"] + 8 + len("blk.0.attn_q.weight")  # n_dims of the second tensor
    ti1_type = ti1 + 4 + 2 * 8
    ti1_offset = ti1_type + 4
    long_kv = kv_str("general.description", "a model description " * 5)
    nested = (s("bomb") + struct.pack("<IIQ", ARR, ARR, 1) + struct.pack("<IQ", ARR, 1) * 50_000
              + struct.pack("<IQ", U32, 0))
    wide = s("wide") + struct.pack("<IIQ", ARR, ARR, 30_000) + struct.pack("<IQ", U32, 0) * 30_000
    return {
        "empty": (b"", "is empty"),
        "inside-magic": (b"GG", "truncated"),
        "inside-version": (v[:6], "the version"),
        "inside-counts": (v[:8 + 11], "the metadata count"),
        # one entry and no tensors, so that the up-front check on the counts passes
        "inside-kv-key": (build([long_kv], [], 0)[0][:24 + 8 + 10], "key of metadata entry 1"),
        "inside-kv-value": (build([long_kv], [], 0)[0][:-40], "general.description"),
        "inside-array": (v[:m["kv3"] + 80], "tokenizer.ggml.tokens"),
        "inside-tensor-info": (v[:m["ti1"] + 20], "tensor"),
        "inside-tensor-data": (v[:-10], "tensor data for 'blk.0.attn_q.weight' ends at byte"),
        "wrong-magic": (b"GGUG" + v[4:], "not a GGUF file (starts with b'GGUG')"),
        "version-1": (patched(v, 4, "<I", 1), "version 1 is obsolete"),
        "version-99": (patched(v, 4, "<I", 99), "unknown GGUF version 99"),
        "big-endian": (patched(v, 4, ">I", 3), "big-endian"),
        "string-2**63": (patched(v, name_len_at, "<Q", 2**63), "9,223,372,036,854,775,808 bytes"),
        "array-2**62": (patched(v, tokens_count_at, "<Q", 2**62), "array 'tokenizer.ggml.tokens'"),
        "kv-count-absurd": (patched(v, 16, "<Q", 2**60), "metadata entries"),
        "kv-count-implausible": (patched(v, 16, "<Q", 70_000) + bytes(70_000 * 13), "implausibly"),
        "tensor-count-absurd": (patched(v, 8, "<Q", 2**62), "tensor infos"),
        "data-past-end": (patched(v, ti1_offset, "<Q", 2048 + 32 * 1000), "ends at byte"),
        "unaligned-offset": (patched(v, ti1_offset, "<Q", 2048 + 16), "not a multiple of the alignment"),
        "overlapping-data": (patched(v, ti1_offset, "<Q", 1024), "overlap"),
        "unknown-ggml-type": (patched(v, ti1_type, "<I", 99), "unknown or unsupported ggml type 99"),
        "removed-ggml-type": (patched(v, ti1_type, "<I", 4), "ggml type 4"),
        "n-dims-9": (patched(v, ti1, "<I", 9), "9 dimensions"),
        "dim-zero": (patched(v, ti1 + 4, "<Q", 0), "invalid shape"),
        "element-overflow": (patched(patched(v, ti1 + 4, "<Q", 2**32), ti1 + 12, "<Q", 2**32),
                             "too many elements"),
        "not-block-multiple": (patched(v, ti1 + 4, "<Q", 48), "not a multiple of the block size 32"),
        "duplicate-key": (build(KVS + [kv_u32("llama.block_count", 3)], TENSORS, DATA_SIZE)[0],
                          "appears twice"),
        "duplicate-tensor": (build(KVS, [TENSORS[0], ("token_embd.weight", [64, 4], 2, 2048)],
                                   DATA_SIZE)[0], "tensor 'token_embd.weight' appears twice"),
        "key-with-newline": (build([kv_u32("a\nb", 1), kv_u32("a\nb", 2)], [], 0)[0],
                             "metadata key 'a\\nb' appears twice"),
        "key-not-utf8": (build([s(b"bad\xff") + struct.pack("<II", U32, 1)], [], 0)[0], "UTF-8"),
        "unknown-value-type": (build([s("k") + struct.pack("<II", 77, 1)], [], 0)[0],
                               "unknown value type 77"),
        "alignment-48": (build(KVS + [kv_u32("general.alignment", 48)], TENSORS, DATA_SIZE)[0],
                         "power of two"),
        "block-count-0": (build(KVS[:2] + [kv_u32("llama.block_count", 0)] + KVS[3:], TENSORS,
                                DATA_SIZE)[0], "block_count is 0"),
        "nested-array-bomb": (build([nested], [], 0)[0], "deep"),
        "nested-array-wide": (build([wide], [], 0)[0], "nested arrays"),
        "png": (png, "not a GGUF file (starts with b'\\x89PNG')"),
        "random-bytes": (random.Random(7).randbytes(4096), "not a GGUF file"),
        "old-ggjt": (b"tjgg" + bytes(100), "GGJT"),
        "safetensors": (struct.pack("<Q", 30) + b'{"__metadata__": {}}' + bytes(64), "safetensors"),
        "lfs-pointer": (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n",
                        "Git LFS pointer"),
    }


MALFORMED = _malformed()


def _expect_error(path: Path, fragment: str) -> GGUFError:
    start = time.monotonic()
    with pytest.raises(GGUFError) as caught:
        inspect(path)
    assert time.monotonic() - start < 1.0, "a bad file must fail fast"
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert fragment in message, message
    assert "\n" not in message
    return caught.value


@pytest.mark.timeout(5)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_fails_fast_and_clearly(case: str, tmp_path: Path) -> None:
    data, fragment = MALFORMED[case]
    path = tmp_path / f"{case}.gguf"
    path.write_bytes(data)
    err = _expect_error(path, fragment)
    assert err.path == str(path) and case in str(err)


@pytest.mark.timeout(5)
def test_directory_missing_and_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "folder.gguf"
    folder.mkdir()
    _expect_error(folder, "is a directory")
    _expect_error(tmp_path / "missing.gguf", "does not exist")
    assert not is_gguf(folder) and not is_gguf(tmp_path / "missing.gguf")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        locked = tmp_path / "locked.gguf"
        locked.write_bytes(raw_valid()[0])
        locked.chmod(0)
        _expect_error(locked, "cannot be read: permission denied")


@pytest.mark.timeout(5)
def test_header_larger_than_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big-header.gguf"
    path.write_bytes(raw_valid()[0])
    monkeypatch.setattr(gguf_format, "MAX_HEADER_BYTES", 1024)  # falls inside the metadata
    # A limit is said in the app's decimal units (format_bytes), as every size shown.
    _expect_error(path, "header too large: the key of metadata entry 5 of 7 would end past the first 1.02 kB")
    monkeypatch.undo()
    assert gguf_format.header_cap() == "268 MB"  # 256 MiB, said as the app says sizes


@pytest.mark.timeout(10)
def test_absurd_counts_do_not_allocate(tmp_path: Path) -> None:
    cases = ["string-2**63", "array-2**62", "kv-count-absurd", "tensor-count-absurd",
             "kv-count-implausible", "nested-array-bomb", "nested-array-wide"]
    tracemalloc.start()
    try:
        for case in cases:
            path = tmp_path / f"{case}.gguf"
            path.write_bytes(MALFORMED[case][0])
            tracemalloc.reset_peak()
            with pytest.raises(GGUFError):
                inspect(path)
            _, peak = tracemalloc.get_traced_memory()
            assert peak < 50 * 2**20, (case, peak)
    finally:
        tracemalloc.stop()


@pytest.mark.timeout(5)
def test_long_strings_are_summarised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "long-template.gguf"
    template = "{{ messages }}" * 100
    path.write_bytes(build(KVS + [kv_str("tokenizer.chat_template", template)], TENSORS,
                           DATA_SIZE)[0])
    assert inspect(path).chat_template == template
    monkeypatch.setattr(gguf_info, "KEEP_STRING_BYTES", 1000)
    info = inspect(path)
    assert info.chat_template is None and info.name == "raw-model"
    assert info.metadata["tokenizer.chat_template"] == "[string of 1,400 bytes]"


@pytest.mark.timeout(5)
def test_too_many_array_strings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "many-strings.gguf"
    path.write_bytes(raw_valid()[0])
    monkeypatch.setattr(gguf_info, "MAX_ARRAY_STRINGS", 10)
    _expect_error(path, "implausibly many strings")


@pytest.mark.timeout(5)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_named_pipe_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    _expect_error(fifo, "is not a regular file")
    assert not is_gguf(fifo)


def test_error_pickles() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(GGUFError("m.gguf", "is empty")))
    assert (str(err), err.path, err.reason) == ("m.gguf: is empty", "m.gguf", "is empty")


@pytest.mark.timeout(20)
def test_mutated_files_never_crash(tmp_path: Path) -> None:
    """Seeded random truncations and byte patches: each file reads, or fails with a GGUFError."""
    valid, _ = raw_valid()
    rng = random.Random(2024)
    path = tmp_path / "mutant.gguf"
    for _ in range(300):
        b = bytearray(valid[:rng.randrange(len(valid))] if rng.random() < 0.3 else valid)
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(max(len(b) - 8, 1))
            if rng.random() < 0.5:
                b[at:at + 1] = bytes([rng.randrange(256)])
            else:
                b[at:at + 8] = struct.pack("<Q", rng.choice([0, 2**31, 2**63, 2**64 - 1,
                                                             rng.randrange(2**64)]))
        path.write_bytes(b)
        try:
            inspect(path)
        except GGUFError as exc:
            assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)


def test_is_gguf(tmp_path: Path) -> None:
    blob = tmp_path / "sha256-0123abcd"  # a model blob without an extension
    blob.write_bytes(raw_valid()[0])
    other = tmp_path / "x.png"
    other.write_bytes(MALFORMED["png"][0])
    assert is_gguf(blob) and not is_gguf(other)


# -- speed on real-size headers ----------------------------------------------------------------
def _big_header(path: Path, n_tokens: int, n_merges: int, n_tensors: int, bos: int, eos: int) -> None:
    tokens = [f"<tok_{i}>" for i in range(n_tokens)]
    tokens[bos], tokens[eos] = "<|begin_of_text|>", "<|eot_id|>"
    kvs = [kv_str("general.architecture", "llama"), kv_u32("llama.block_count", n_tensors // 9),
           kv_str_array("tokenizer.ggml.tokens", tokens),
           kv_f32_array("tokenizer.ggml.scores", [0.0] * n_tokens),
           s("tokenizer.ggml.token_type") + struct.pack(f"<IIQ{n_tokens}i", ARR, I32, n_tokens,
                                                        *[1] * n_tokens),
           kv_u32("tokenizer.ggml.bos_token_id", bos), kv_u32("tokenizer.ggml.eos_token_id", eos)]
    if n_merges:
        kvs.append(kv_str_array("tokenizer.ggml.merges", [f"a{i} b{i}" for i in range(n_merges)]))
    tensors = [(f"blk.{i // 9}.t{i % 9}.weight", [32, 4], 0, 512 * i) for i in range(n_tensors)]
    path.write_bytes(build(kvs, tensors, 512 * n_tensors)[0])


@pytest.mark.timeout(20)
def test_llama2_size_header_is_fast(tmp_path: Path) -> None:
    path = tmp_path / "llama2-header.gguf"
    _big_header(path, 32_000, 0, 200, 1, 2)
    start = time.perf_counter()
    info = inspect(path)
    elapsed = time.perf_counter() - start
    assert (info.vocab_size, info.tensor_count) == (32_000, 200)
    assert (info.bos_token, info.eos_token) == ("<|begin_of_text|>", "<|eot_id|>")
    assert elapsed < 0.3, f"inspect took {elapsed:.3f} s"


@pytest.mark.timeout(30)
def test_llama3_size_header_is_fast(tmp_path: Path) -> None:
    path = tmp_path / "llama3-header.gguf"
    _big_header(path, 128_256, 280_147, 290, 128_000, 128_009)
    start = time.perf_counter()
    info = inspect(path)
    elapsed = time.perf_counter() - start
    assert info.vocab_size == 128_256
    assert (info.bos_token, info.eos_token) == ("<|begin_of_text|>", "<|eot_id|>")
    assert info.metadata["tokenizer.ggml.merges"] == "[array of 280,147 str]"
    assert elapsed < 1.0, f"inspect took {elapsed:.3f} s"


# -- the command line: `corral inspect` as shipped (python -m app, nothing registered here) -----
def test_inspect_command(writer_model: Path, tmp_path: Path) -> None:
    def corral(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app", "inspect", *argv], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    size = writer_model.stat().st_size
    ok = corral(str(writer_model))
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout.splitlines() == [
        f"file:             {writer_model}",
        f"size:             {size // 1000} kB ({size:,} bytes)",
        "format:           GGUF v3, 3 tensors",
        "architecture:     llama",
        "name:             Corral Test",
        "parameters:       68.16 K (68,160)",
        "quantization:     Q4_0",
        "context:          2,048",
        "embedding:        64",
        "layers:           1",
        "heads / KV heads: 4 / 2",
        "vocab:            1,000",
        "tokenizer:        llama",
        "BOS / EOS:        1 '<s>' / 2 '</s>'",
        "chat template:    yes ({% for m in messages %})"]
    as_json = corral("--json", str(writer_model))
    assert (as_json.returncode, as_json.stderr) == (0, "")
    data = json.loads(as_json.stdout)
    assert {k: data[k] for k in ("path", "file_size", "architecture", "name", "quantization",
                                 "context_length", "vocab_size", "bos_token", "eos_token",
                                 "tensor_count", "tensor_types")} == {
        "path": str(writer_model), "file_size": size, "architecture": "llama",
        "name": "Corral Test", "quantization": "Q4_0", "context_length": 2048,
        "vocab_size": 1000, "bos_token": "<s>", "eos_token": "</s>", "tensor_count": 3,
        "tensor_types": {"F32": 2, "Q4_0": 1}}

    # Bad files: one line naming the file and what is wrong, exit 1, nothing on stdout.
    for name, data_, said in (
            ("random.gguf", MALFORMED["random-bytes"][0],
             f"not a GGUF file (starts with {MALFORMED['random-bytes'][0][:4]!r})"),
            ("picture.gguf", MALFORMED["png"][0], None),
            ("truncated.gguf", raw_valid()[0][:-10], None)):
        bad = tmp_path / name
        bad.write_bytes(data_)
        failed = corral(str(bad))
        lines = failed.stderr.splitlines()
        assert (failed.returncode, failed.stdout, len(lines)) == (1, "", 1), failed.stderr
        assert lines[0] == f"corral: {bad}: {said or gguf_error(bad)}"


def gguf_error(path: Path) -> str:
    """What the core says of a bad file (the command must print exactly that)."""
    with pytest.raises(GGUFError) as caught:
        inspect(path)
    return str(caught.value).removeprefix(f"{path}: ")
