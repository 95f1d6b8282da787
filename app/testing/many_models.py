"""A library of many models, made cheaply: a few generated GGUFs under many distinct file names.

    seed_library(folder, n=200) -> [paths]

Each file is a real GGUF with real metadata (app/testing/models.py), so the Library reads and
checks every one of them; the bytes are shared through hard links (copies where the file system
has none), so 200 models cost the disk a few files. The names look like what people keep —
`mistral-7b-instruct-v0.2.Q4_K_M.gguf`, `vicuna-7b-v1.5.Q4_K_M.gguf` (a catalog file) — twenty
families times ten quantisations. Used by bench/gui_scale.py, tools/screenshots.py and the tests.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from app.testing import models

FAMILIES = ("llama-2-7b-chat", "vicuna-7b-v1.5", "mistral-7b-instruct-v0.2", "tinyllama-1.1b-chat-v1.0",
            "codellama-7b-instruct", "openhermes-2.5-mistral-7b", "zephyr-7b-beta", "orca-mini-3b",
            "wizardlm-13b-v1.2", "alpaca-7b", "koala-13b", "llama-3.2-1b-instruct",
            "qwen2.5-0.5b-instruct", "phi-2", "gemma-2b-it", "solar-10.7b-instruct", "yi-6b-chat",
            "neural-chat-7b-v3", "starling-lm-7b-alpha", "deepseek-coder-6.7b-instruct")
QUANTS = ("Q4_K_M", "Q2_K", "Q3_K_M", "Q4_0", "Q5_K_M", "Q6_K", "Q8_0", "F16", "IQ4_XS", "Q5_0")


def names(n: int = 200) -> list[str]:
    """`n` distinct file names, family by family."""
    out = [f"{family}.{quant}.gguf" for family in FAMILIES for quant in QUANTS]
    extra = 0
    while len(out) < n:  # more than 200: numbered copies
        extra += 1
        out += [f"{family}-copy{extra}.{quant}.gguf" for family in FAMILIES for quant in QUANTS]
    return out[:n]


def bases() -> list[Path]:
    """A few generated models of different shapes (layers, context, templates), from the cache."""
    return [
        models.cached_model("tiny", name="many-a"),
        models.cached_model("tiny", name="many-b", block_count=1, context_length=4096),
        models.cached_model("tiny", name="many-c", block_count=3, chat_template=models.CHATML_TEMPLATE),
        models.cached_model("tiny", name="many-d", block_count=4, context_length=8192,
                            chat_template=models.ZEPHYR_TEMPLATE),
        models.cached_model("small", name="many-e"),
    ]


def _place(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copyfile(source, dest)


def seed_library(folder: str | os.PathLike, n: int = 200) -> list[Path]:
    """`n` models in `folder` (the models folder of a Corral home); their paths, in name order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sources = bases()
    out = []
    for i, name in enumerate(names(n)):
        dest = folder / name
        if not dest.exists():
            _place(sources[i % len(sources)], dest)
        out.append(dest)
    return out
