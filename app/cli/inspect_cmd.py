"""`corral inspect PATH [--json]`: what a GGUF file holds, read from its header only."""

from __future__ import annotations

import json
import sys

from app.core.gguf_info import ModelInfo, inspect
from app.core.memory_plan import format_bytes
from app.core.safetext import terminal_safe


def register(sub) -> None:
    p = sub.add_parser("inspect", help="show what a GGUF model file holds (reads only its header)",
                       description="Read and check the header of a GGUF model file and show "
                                   "what it holds. Exits 1 if the file is not a usable model.")
    p.add_argument("path", metavar="PATH", help="a .gguf file")
    p.add_argument("--json", action="store_true", help="print every field as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    info = inspect(args.path)  # GGUFError propagates: main() prints it as one line, exit 1
    if args.json:
        json.dump(info.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_info(info))
    return 0


def format_info(info: ModelInfo) -> str:
    """The human listing: one aligned `key: value` line per fact."""
    rows = [
        ("file", str(info.path)),
        ("size", f"{format_bytes(info.file_size)} ({info.file_size:,} bytes)"),
        ("format", f"GGUF v{info.gguf_version}, {info.tensor_count:,} tensors"),
        ("architecture", info.architecture),
        ("name", info.name),
        ("parameters", _parameters(info.parameters)),
        ("quantization", info.quantization),
        ("context", _num(info.context_length)),
        ("embedding", _num(info.embedding_length)),
        ("layers", _num(info.block_count)),
        ("heads / KV heads", f"{_num(info.head_count)} / {_num(info.head_count_kv)}"),
        ("vocab", _num(info.vocab_size)),
        ("tokenizer", info.tokenizer_model),
        ("BOS / EOS", f"{_token(info.bos_token_id, info.bos_token)} / "
                      f"{_token(info.eos_token_id, info.eos_token)}"),
        ("chat template", _template(info.chat_template)),
    ]
    width = max(len(key) for key, _ in rows) + 2
    return "".join(f"{key + ':':<{width}}{'-' if value is None else terminal_safe(value)}\n"
                   for key, value in rows)


def _parameters(n: int) -> str:
    for unit, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit} ({n:,})"
    return f"{n:,}"


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _token(token_id: int | None, text: str | None) -> str:
    if token_id is None:
        return "-"
    return f"{token_id} {text!r}" if text is not None else str(token_id)


def _template(template: str | None) -> str:
    if not template:
        return "no"
    first = template.strip().splitlines()[0] if template.strip() else ""
    if len(first) > 60:
        first = first[:57] + "..."
    return f"yes ({first})" if first else "yes"
