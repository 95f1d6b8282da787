"""The generated test models: real GGUF files, deterministic, and runnable by llama.cpp."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from app.testing import models


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fields(path: Path) -> dict:
    reader = gguf.GGUFReader(path)
    return {name: field.contents() for name, field in reader.fields.items()}, reader


def test_tiny_is_small_and_deterministic(tiny_model: Path, tmp_path: Path) -> None:
    assert tiny_model.name == "corral-tiny.F32.gguf"
    assert tiny_model.stat().st_size < 2 * 1024 * 1024
    again = models.tiny(tmp_path)
    assert _sha(again) == _sha(tiny_model)
    assert _sha(models.tiny(tmp_path / "seeded", seed=1)) != _sha(tiny_model)
    assert not list(tmp_path.glob(".*.tmp")), "the temporary file is renamed, not left behind"


def test_small_is_deterministic(small_model: Path, tmp_path: Path) -> None:
    assert small_model.name == "corral-small.Q4_0.gguf"
    assert small_model.stat().st_size < 64 * 1024 * 1024
    assert _sha(models.small(tmp_path)) == _sha(small_model)


def test_tiny_reads_back_with_llama_metadata(tiny_model: Path) -> None:
    f, reader = _fields(tiny_model)
    s = models.SHAPES["tiny"]
    assert f["general.architecture"] == "llama"
    assert f["general.name"] == "corral-tiny"
    assert f["general.file_type"] == gguf.LlamaFileType.ALL_F32
    assert (f["llama.context_length"], f["llama.embedding_length"], f["llama.block_count"]) == (
        s.ctx, s.embd, s.layers)
    assert f["llama.feed_forward_length"] == s.ff
    assert (f["llama.attention.head_count"], f["llama.attention.head_count_kv"]) == (s.heads, s.kv_heads)
    assert f["llama.rope.dimension_count"] == s.embd // s.heads
    assert f["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-5)
    assert f["llama.vocab_size"] == s.vocab
    assert f["tokenizer.ggml.model"] == "llama"
    tokens, types = f["tokenizer.ggml.tokens"], f["tokenizer.ggml.token_type"]
    assert len(tokens) == len(types) == len(f["tokenizer.ggml.scores"]) == s.vocab
    assert tokens[:3] == ["<unk>", "<s>", "</s>"]
    assert (f["tokenizer.ggml.unknown_token_id"], f["tokenizer.ggml.bos_token_id"],
            f["tokenizer.ggml.eos_token_id"]) == (0, 1, 2)
    assert tokens[3] == "<0x00>" and tokens[258] == "<0xFF>"
    assert set(types[3:259]) == {gguf.TokenType.BYTE}
    assert {"▁the", "▁hello", "▁world", "▁USER", "ASSISTANT", ":", "é", "▁café"} <= set(tokens)
    assert not any("\u4e00" <= ch <= "\u9fff" for t in tokens for ch in t), "CJK must use bytes"
    assert "tokenizer.chat_template" not in f

    shapes = {t.name: (t.tensor_type, list(t.shape)) for t in reader.tensors}
    assert shapes["token_embd.weight"] == (gguf.GGMLQuantizationType.F32, [s.embd, s.vocab])
    assert shapes["output.weight"] == (gguf.GGMLQuantizationType.F32, [s.embd, s.vocab])
    assert shapes["output_norm.weight"] == (gguf.GGMLQuantizationType.F32, [s.embd])
    kv = s.embd // s.heads * s.kv_heads
    assert shapes["blk.1.attn_k.weight"][1] == [s.embd, kv]
    assert shapes["blk.1.ffn_down.weight"][1] == [s.ff, s.embd]
    assert shapes["blk.1.ffn_up.weight"][1] == [s.embd, s.ff]
    assert len(shapes) == 3 + 9 * s.layers


def test_quantized_weights_are_valid_q4_0(tmp_path: Path) -> None:
    # small's writer path on tiny's shape: GGUFReader needs seconds for a 32000-token vocabulary.
    shape = dataclasses.replace(models.SHAPES["tiny"], wtype=gguf.GGMLQuantizationType.Q4_0)
    path = models.write_model(tmp_path, shape, name="q")
    f, reader = _fields(path)
    assert path.name == "q.Q4_0.gguf"
    assert f["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q4_0
    tensors = {t.name: t for t in reader.tensors}
    assert tensors["blk.0.ffn_gate.weight"].tensor_type == gguf.GGMLQuantizationType.Q4_0
    assert tensors["blk.0.ffn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert list(tensors["blk.0.attn_q.weight"].shape) == [shape.embd, shape.embd]
    weights = gguf.dequantize(tensors["blk.0.ffn_down.weight"].data, gguf.GGMLQuantizationType.Q4_0)
    assert weights.shape == (shape.embd, shape.ff) and np.isfinite(weights).all()
    assert 0.005 < weights.std() < 0.05


def test_variants_carry_their_metadata(make_model, tmp_path: Path) -> None:
    path = make_model("tiny", folder=tmp_path, name="vicuna-7b-v1.5",
                      chat_template=models.CHATML_TEMPLATE, context_length=512)
    assert path.name == "vicuna-7b-v1.5.F32.gguf"
    f, _ = _fields(path)
    assert f["general.name"] == "vicuna-7b-v1.5"
    assert f["tokenizer.chat_template"] == models.CHATML_TEMPLATE
    assert f["llama.context_length"] == 512

    empty = make_model("tiny", folder=tmp_path, name="no-blocks", block_count=0)
    f, reader = _fields(empty)
    assert f["llama.block_count"] == 0
    assert sorted(t.name for t in reader.tensors) == [
        "output.weight", "output_norm.weight", "token_embd.weight"]


def test_cached_model_writes_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    first = models.cached_model("tiny", name="zephyr", chat_template=models.ZEPHYR_TEMPLATE)
    mtime = first.stat().st_mtime_ns
    assert first.name == "zephyr.F32.gguf" and first.is_relative_to(tmp_path)
    assert models.cached_model("tiny", chat_template=models.ZEPHYR_TEMPLATE, name="zephyr") == first
    assert first.stat().st_mtime_ns == mtime
    assert models.cached_model("tiny", name="zephyr") != first


def test_cli_prints_the_path(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert models.main(["tiny", "--out", str(tmp_path), "--name", "cli-model"]) == 0
    printed = Path(capsys.readouterr().out.strip())
    assert printed == tmp_path / "cli-model.F32.gguf" and printed.is_file()


@pytest.fixture(scope="module")
def tiny_llama(tiny_model: Path):
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=str(tiny_model), n_ctx=512, n_threads=2, seed=0, verbose=False)
    yield llm
    llm.close()


def test_llama_cpp_tokenizes_with_the_vocab(tiny_llama) -> None:
    ids = tiny_llama.tokenize(b"hello world")
    assert [tiny_llama.detokenize([i]) for i in ids[1:]] == [b" hello", b" world"]
    assert ids[0] == tiny_llama.token_bos() == 1
    cjk = tiny_llama.tokenize("日本".encode(), add_bos=False)
    # "▁" and then six UTF-8 bytes, each a <0xNN> token (ids 3..258)
    assert len([i for i in cjk if 3 <= i <= 258]) == 6
    assert tiny_llama.detokenize(cjk).strip() == "日本".encode()


def test_llama_cpp_generates_deterministically(tiny_llama) -> None:
    def run() -> str:
        tiny_llama.reset()
        out = tiny_llama.create_completion("hello world", temperature=0, max_tokens=16)
        assert out["usage"]["completion_tokens"] == 16  # no </s>: runs to max_tokens
        return out["choices"][0]["text"]

    first = run()
    assert first.strip() and run() == first


def test_zero_blocks_aborts_llama_cpp(make_model, tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    path = make_model("tiny", folder=tmp_path, name="zero-blocks", block_count=0)
    code = f"import llama_cpp; llama_cpp.Llama(model_path={str(path)!r}, verbose=False)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode in (-6, 134), proc.stderr[-2000:]
