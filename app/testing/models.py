"""Generated LLaMA-architecture GGUF models for tests and benchmarks.

Real GGUF files that llama.cpp loads and runs, with random weights and a small
SentencePiece-style vocabulary, so tests never download a model. One writer
(`write_model`) takes a `ModelShape`; the kinds (`tiny`, `small`, `tinyllama_shape`) are
preset shapes, and variants are keyword options. The same arguments give the same bytes.

    python -m app.testing.models KIND [--out DIR] [--name N]   # prints the file's path
"""

from __future__ import annotations

import argparse
import hashlib
import os
import uuid
import zlib
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import GGUFWriter, LlamaFileType, TokenType
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import quant_shape_to_byte_shape

# Bump when the bytes written for the same arguments change, so cached files are remade.
GENERATOR_VERSION = 1
CACHE_ENV = "CORRAL_TEST_MODELS"

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# The template TinyLlama-1.1B-Chat ships (Zephyr style), newlines included.
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n"
    "{% endfor %}"
)


@dataclass(frozen=True)
class ModelShape:
    embd: int
    layers: int
    heads: int
    kv_heads: int
    ff: int
    vocab: int
    ctx: int
    wtype: QT = QT.F32  # type of the 2-D matrices; norms are always F32


SHAPES: dict[str, ModelShape] = {
    "tiny": ModelShape(64, 2, 4, 2, 128, 1024, 2048, QT.F32),
    "small": ModelShape(512, 8, 8, 4, 1408, 32000, 4096, QT.Q4_0),
    "tinyllama_shape": ModelShape(2048, 22, 32, 4, 5632, 32000, 2048, QT.Q4_0),
}

_FILE_TYPES = {QT.F32: LlamaFileType.ALL_F32, QT.F16: LlamaFileType.MOSTLY_F16,
               QT.Q8_0: LlamaFileType.MOSTLY_Q8_0, QT.Q4_0: LlamaFileType.MOSTLY_Q4_0}
_WEIGHT_STD = 0.02  # small enough that activations and logits stay finite in any depth used
# Standard deviation of the integer part of a block: Q4_0 nibbles are 0..15 minus 8, Q8_0 is int8.
_QUANT_STD = {QT.Q4_0: (16**2 - 1) ** 0.5 / 12**0.5, QT.Q8_0: (256**2 - 1) ** 0.5 / 12**0.5}

# Words the tests and chat templates use; every substring of "▁word" is put in the vocabulary
# so that SentencePiece merging (highest score first, only into pieces that exist) always
# reaches the whole word whatever order it merges in.
_WORDS = ("the hello world Hello World USER ASSISTANT SYSTEM user assistant system Human "
          "Instruction Response Input you are a is of and to in it that what how can help me "
          "please thanks yes no question answer model chat test story once upon time café").split()
_EXTRA_CHARS = "éèàüöñç—’"  # a few multi-byte pieces; CJK is left to byte fallback on purpose
# <unk>=0, <s>=1, </s>=2, then the 256 byte tokens, as in LLaMA's own vocabulary.
_N_SPECIAL = 3 + 256


@lru_cache(maxsize=8)
def build_vocab(n_vocab: int) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types for a vocabulary of exactly n_vocab pieces."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL] + [TokenType.BYTE] * 256
    pieces: dict[str, None] = {"▁": None}  # an ordered set
    pieces.update(dict.fromkeys(chr(c) for c in range(0x21, 0x7F)))
    pieces.update(dict.fromkeys(_EXTRA_CHARS))
    for word in _WORDS:
        w = "▁" + word
        pieces.update(dict.fromkeys(w[i:j] for j in range(1, len(w) + 1) for i in range(j)))
    letters = "abcdefghijklmnopqrstuvwxyz"
    synthetic = ([a + b for a in letters for b in letters] + ["▁" + a for a in letters.upper()]
                 + ["▁" + a + b for a in letters for b in letters]
                 + [a + b + c for a in letters for b in letters for c in letters]
                 + ["▁" + a + b + c for a in letters for b in letters for c in letters])
    for piece in synthetic:
        if len(tokens) + len(pieces) >= n_vocab:
            break
        pieces.setdefault(piece)
    normal = list(pieces)[: n_vocab - len(tokens)]
    if len(tokens) + len(normal) < n_vocab:
        raise ValueError(f"vocab of {n_vocab} is larger than this generator can fill")
    # Longer pieces score higher so they win merges; the tiny index term breaks ties stably.
    scores = [0.0] * len(tokens) + [len(p) - i * 1e-6 for i, p in enumerate(normal)]
    return tokens + normal, scores, [int(t) for t in types] + [int(TokenType.NORMAL)] * len(normal)


def _tensor_plan(s: ModelShape) -> list[tuple[str, tuple[int, ...]]]:
    """Tensor names and numpy shapes (rows = outputs); gguf reverses them into ggml's ne order,
    so (n_vocab, n_embd) here is ne=[n_embd, n_vocab] as llama.cpp wants for token_embd."""
    head_dim = s.embd // s.heads
    kv = head_dim * s.kv_heads
    plan = [("token_embd.weight", (s.vocab, s.embd))]
    for i in range(s.layers):
        b = f"blk.{i}."
        plan += [(b + "attn_norm.weight", (s.embd,)), (b + "attn_q.weight", (s.embd, s.embd)),
                 (b + "attn_k.weight", (kv, s.embd)), (b + "attn_v.weight", (kv, s.embd)),
                 (b + "attn_output.weight", (s.embd, s.embd)), (b + "ffn_norm.weight", (s.embd,)),
                 (b + "ffn_gate.weight", (s.ff, s.embd)), (b + "ffn_up.weight", (s.ff, s.embd)),
                 (b + "ffn_down.weight", (s.embd, s.ff))]
    return plan + [("output_norm.weight", (s.embd,)), ("output.weight", (s.vocab, s.embd))]


def _tensor_data(name: str, shape: tuple[int, ...], wtype: QT, seed: int, n_quiet: int) -> np.ndarray:
    # Each tensor has its own stream keyed on its name, so its bytes never depend on order.
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    if len(shape) == 1:
        return np.ones(shape, dtype=np.float32)
    rows = shape[0]
    if wtype in (QT.F32, QT.F16):
        data = rng.standard_normal(shape, dtype=np.float32) * np.float32(_WEIGHT_STD)
        if name == "output.weight":
            data[:n_quiet] = 0.0
        return data.astype(np.float16 if wtype == QT.F16 else np.float32)
    # Quantized: write valid blocks directly (fp16 scale d, then the packed integers) instead of
    # quantizing floats, which would take minutes for the 1.1B shape.
    block, size = GGML_QUANT_SIZES[wtype]
    n_blocks = shape[1] // block
    raw = rng.integers(0, 256, size=(rows, n_blocks, size), dtype=np.uint8)
    d = rng.uniform(0.5, 1.5, size=(rows, n_blocks)) * (_WEIGHT_STD / _QUANT_STD[wtype])
    raw[:, :, :2] = d.astype("<f2").view(np.uint8).reshape(rows, n_blocks, 2)
    if name == "output.weight":
        raw[:n_quiet, :, :2] = 0  # d = 0: the row is all zeros
    return raw.reshape(quant_shape_to_byte_shape(shape, wtype))


def _size_label(s: ModelShape) -> str:
    n = sum(int(np.prod(shape)) for _, shape in _tensor_plan(s))
    return f"{n / 1e9:.1f}B" if n >= 1e9 else f"{max(n / 1e6, 0.1):.1f}M"


def write_model(folder: str | os.PathLike, shape: ModelShape, *, name: str = "corral-test",
                chat_template: str | None = None, block_count: int | None = None,
                context_length: int | None = None, seed: int = 0) -> Path:
    """Write `{name}.{weight type}.gguf` into folder atomically and return its path.

    block_count=0 is allowed on purpose: llama.cpp aborts the process on such a file.
    The rows of output.weight for control and byte tokens are zero, so greedy generation never
    ends with </s> and always yields printable text: the output runs to max_tokens.
    """
    if block_count is not None:
        shape = replace(shape, layers=block_count)
    if context_length is not None:
        shape = replace(shape, ctx=context_length)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.{shape.wtype.name}.gguf"
    tokens, scores, types = build_vocab(shape.vocab)

    w = GGUFWriter(None, "llama")
    w.add_name(name)
    w.add_basename(name)
    w.add_size_label(_size_label(shape))
    w.add_file_type(int(_FILE_TYPES[shape.wtype]))
    w.add_quantization_version(2)
    w.add_vocab_size(shape.vocab)
    w.add_context_length(shape.ctx)
    w.add_embedding_length(shape.embd)
    w.add_block_count(shape.layers)
    w.add_feed_forward_length(shape.ff)
    w.add_head_count(shape.heads)
    w.add_head_count_kv(shape.kv_heads)
    w.add_rope_dimension_count(shape.embd // shape.heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    if chat_template:
        w.add_chat_template(chat_template)

    # Declare every tensor first, then generate and write them one at a time, so memory stays
    # at one tensor (~37 MB) even for the 620 MB shape.
    plan = _tensor_plan(shape)
    for tname, tshape in plan:
        if len(tshape) == 1 or shape.wtype in (QT.F32, QT.F16):
            dtype = np.dtype(np.float32 if len(tshape) == 1 or shape.wtype == QT.F32 else np.float16)
            w.add_tensor_info(tname, tshape, dtype, int(np.prod(tshape)) * dtype.itemsize)
        else:
            byte_shape = quant_shape_to_byte_shape(tshape, shape.wtype)
            w.add_tensor_info(tname, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)),
                              raw_dtype=shape.wtype)

    # A unique hidden name beside the target (not mkstemp: its 0600 mode would stick to the file).
    tmp = folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        w.write_header_to_file(tmp)
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for tname, tshape in plan:
            w.write_tensor_data(_tensor_data(tname, tshape, shape.wtype, seed, _N_SPECIAL))
        w.close()
        os.replace(tmp, path)
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise
    return path


def tiny(folder: str | os.PathLike, **options) -> Path:
    """~0.8 MB, F32: a token takes well under a millisecond. Options: see write_model."""
    return write_model(folder, SHAPES["tiny"], **{"name": "corral-tiny", **options})


def small(folder: str | os.PathLike, **options) -> Path:
    """~34 MiB, Q4_0: a 2000-token prompt takes about 2 s to evaluate with 2 threads."""
    return write_model(folder, SHAPES["small"], **{"name": "corral-small", **options})


def tinyllama_shape(folder: str | os.PathLike, **options) -> Path:
    """~591 MiB, Q4_0, TinyLlama-1.1B's shape: realistic speed and memory. Written in ~4 s."""
    return write_model(folder, SHAPES["tinyllama_shape"], **{"name": "corral-tinyllama-shape", **options})


KINDS = {"tiny": tiny, "small": small, "tinyllama_shape": tinyllama_shape}


def cache_dir() -> Path:
    """$CORRAL_TEST_MODELS, else the user cache folder; never inside the repository."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs
    return Path(platformdirs.user_cache_dir("corral-test-models", appauthor=False))


def cached_model(kind: str, **options) -> Path:
    """The path of a generated model in the cache folder, written only if it is missing.

    Each (kind, options, GENERATOR_VERSION) gets its own sub-folder, so the file name itself
    stays exactly what name= asks for."""
    key = repr((GENERATOR_VERSION, kind, sorted(options.items())))
    folder = cache_dir() / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    existing = sorted(folder.glob("*.gguf")) if folder.is_dir() else []
    return existing[0] if existing else KINDS[kind](folder, **options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.testing.models",
                                     description="Write a generated GGUF test model; print its path.")
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--out", type=Path, help="folder to (re)write into; default: the cache")
    parser.add_argument("--name")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--block-count", type=int)
    parser.add_argument("--context-length", type=int)
    parser.add_argument("--chat-template", choices=["chatml", "zephyr"])
    args = parser.parse_args(argv)
    options = {k: v for k, v in {
        "name": args.name, "seed": args.seed, "block_count": args.block_count,
        "context_length": args.context_length,
        "chat_template": {"chatml": CHATML_TEMPLATE, "zephyr": ZEPHYR_TEMPLATE}.get(args.chat_template),
    }.items() if v is not None}
    path = KINDS[args.kind](args.out, **options) if args.out else cached_model(args.kind, **options)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
