"""How much memory a model needs at a given context size, and whether this machine has it.

    need = weights + KV cache + compute buffers + runtime overhead

- weights: the GGUF file's size (llama.cpp maps the file; every byte of every tensor is read
  into memory, RAM or VRAM, while the model is loaded).
- KV cache: layers × context × KV width × 2 (one K and one V) × element size, where the KV
  width is head_dim × n_head_kv = n_embd / n_head × n_head_kv (grouped-query attention makes it
  smaller than n_embd) and the element size is 2 bytes (llama.cpp's default f16 cache).
  TinyLlama at 2048 tokens: 22 × 2048 × 256 × 2 × 2 = 44 MiB.
- compute buffers: llama.cpp's scratch memory for one batch. Without flash attention its largest
  tensors are the attention scores (n_ubatch × context × n_head floats) and the logits
  (n_ubatch × n_vocab floats); we count both at 4 bytes with n_ubatch = 512. For Llama-2-7B at
  4096 tokens that is 318 MiB; llama.cpp reports about 300 MiB. An estimate, on the safe side.
- overhead: 160 MiB for the runtime itself (Python, llama.cpp's own allocations, tokenizer and
  vocab tables, the app). A rounded figure from watching the process, not a measurement per model.

With GPU offload (n_gpu_layers = g of L layers) a fraction g / L of the weights and of the KV cache
goes to VRAM, and so do the compute buffers; the rest stays in RAM.

Verdict against the memory the machine has available: "fits" when the need is at most 85 % of it,
"tight" when it is within the last 15 %, "will_not_fit" above. Without GPU offload only RAM counts;
with it, both RAM and VRAM must fit and the worse verdict wins.

Before a download there is no header to read: the catalog gives each entry its real shape
(layers, embedding, heads, KV heads, vocabulary — from the model's published config); for any
other model `typical_shape(parameters)` picks a LLaMA-like shape of that size (documented there),
and the plan says it is an estimate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MiB = 1024 * 1024
GiB = 1024 * MiB

KV_BYTES_F16 = 2
N_UBATCH = 512
RUNTIME_OVERHEAD = 160 * MiB
TIGHT_MARGIN = 0.15

FITS, TIGHT, WILL_NOT_FIT, UNKNOWN = "fits", "tight", "will_not_fit", "unknown"
_VERDICT_ORDER = {FITS: 0, UNKNOWN: 1, TIGHT: 2, WILL_NOT_FIT: 3}


@dataclass(frozen=True)
class ArchShape:
    """The numbers of a transformer that decide its KV cache and compute buffers."""

    n_layers: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_vocab: int = 32000
    n_ctx_train: int | None = None

    @property
    def kv_width(self) -> int:
        """Values per token per layer for K (and again for V): head_dim × n_head_kv."""
        return self.n_embd // self.n_head * self.n_head_kv


# Typical LLaMA-family shapes by size, used only when a model's own header is not at hand.
# (parameters in billions, shape) — LLaMA-1/2 7B/13B/30B/65B, TinyLlama 1.1B, Llama-3.2 3B.
_TYPICAL = (
    (0.6, ArchShape(24, 896, 14, 2, 151936)),      # Qwen2.5-0.5B-like
    (1.5, ArchShape(22, 2048, 32, 4, 32000)),      # TinyLlama-1.1B-like
    (2.5, ArchShape(24, 2048, 32, 32, 49152)),     # SmolLM2-1.7B-like
    (5.0, ArchShape(28, 3072, 24, 8, 128256)),     # Llama-3.2-3B-like
    (10.0, ArchShape(32, 4096, 32, 32, 32000)),    # LLaMA/Llama-2 7B
    (20.0, ArchShape(40, 5120, 40, 40, 32000)),    # 13B
    (45.0, ArchShape(60, 6656, 52, 52, 32000)),    # 30B/33B
    (float("inf"), ArchShape(80, 8192, 64, 8, 32000)),  # 65B/70B (Llama-2-70B uses GQA 8)
)


def typical_shape(parameters_b: float | None) -> ArchShape:
    """A LLaMA-like shape for a model of `parameters_b` billion parameters (7B when unknown)."""
    if parameters_b is None or parameters_b <= 0:
        parameters_b = 7.0
    for limit, shape in _TYPICAL:
        if parameters_b < limit:
            return shape
    return _TYPICAL[-1][1]


def shape_from_info(info: Any) -> ArchShape | None:
    """The shape read from a GGUF header (a gguf_info.ModelInfo or anything with its fields)."""
    layers = getattr(info, "block_count", None)
    embd = getattr(info, "embedding_length", None)
    heads = getattr(info, "head_count", None)
    if not (layers and embd and heads):
        return None
    kv = getattr(info, "head_count_kv", None) or heads
    return ArchShape(int(layers), int(embd), int(heads), int(kv),
                     int(getattr(info, "vocab_size", None) or 32000),
                     getattr(info, "context_length", None))


def kv_cache_bytes(shape: ArchShape, n_ctx: int, bytes_per_element: int = KV_BYTES_F16) -> int:
    return shape.n_layers * n_ctx * shape.kv_width * 2 * bytes_per_element


def compute_buffer_bytes(shape: ArchShape, n_ctx: int, n_ubatch: int = N_UBATCH) -> int:
    batch = min(n_ubatch, n_ctx)
    return 4 * batch * (n_ctx * shape.n_head + shape.n_vocab)


def verdict(need: int, available: int | None, margin: float = TIGHT_MARGIN) -> str:
    if available is None or available <= 0:
        return UNKNOWN
    if need <= available * (1 - margin):
        return FITS
    if need <= available:
        return TIGHT
    return WILL_NOT_FIT


def format_bytes(n: int | float | None) -> str:
    """A size as people read it, in decimal units labelled as such (1 kB = 1000 B, 1 MB = 1000
    kB, as the Hugging Face hub and the file managers of GNOME and macOS count), to three
    significant digits: "844 kB", "620 MB", "4.08 GB". The one formatter of sizes for every face
    (the window, `corral models list`, `corral inspect`), so one file shows one figure."""
    if n is None:
        return "?"
    n = float(n)
    if abs(n) < 1000:
        return f"{int(n)} B"
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        n /= 1000
        text = f"{n:.2f}" if abs(n) < 10 else f"{n:.1f}" if abs(n) < 100 else f"{n:.0f}"
        if float(text) < 1000 or unit == "PB":  # 999.6 kB rounds to 1000: say 1 MB
            break
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {unit}"


@dataclass(frozen=True)
class MemoryPlan:
    n_ctx: int
    weights: int
    kv_cache: int
    compute: int
    overhead: int
    ram: int                 # bytes needed in RAM
    vram: int                # bytes needed in VRAM (0 without offload)
    gpu_layers: int          # layers offloaded (resolved: never -1)
    n_layers: int
    ram_available: int | None
    ram_total: int | None
    vram_total: int | None
    verdict: str             # fits | tight | will_not_fit | unknown
    estimated_shape: bool    # True when the shape was guessed from the parameter count
    notes: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        return self.ram + self.vram

    @property
    def fits(self) -> bool:
        return self.verdict in (FITS, TIGHT)

    def text(self) -> str:
        """One line for people, e.g. "needs 5.1 GB of 16 GB (11.9 GB free): fits"."""
        parts = [f"needs {format_bytes(self.ram)}"]
        if self.ram_total:
            parts.append(f"of {format_bytes(self.ram_total)}")
        line = " ".join(parts)
        if self.ram_available is not None:
            line += f" ({format_bytes(self.ram_available)} free)"
        if self.vram:
            line += f" + {format_bytes(self.vram)} VRAM"
            if self.vram_total:
                line += f" of {format_bytes(self.vram_total)}"
        label = {FITS: "fits", TIGHT: "tight", WILL_NOT_FIT: "will not fit", UNKNOWN: "unknown"}
        line += f": {label[self.verdict]}"
        if self.estimated_shape:
            line += " (estimate)"
        return line

    def breakdown(self) -> str:
        return (f"weights {format_bytes(self.weights)}, KV cache {format_bytes(self.kv_cache)} "
                f"({self.n_ctx} tokens), compute {format_bytes(self.compute)}, "
                f"runtime {format_bytes(self.overhead)}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        data["total"] = self.total
        data["text"] = self.text()
        return data


def plan(weights: int, shape: ArchShape, n_ctx: int, *, gpu_layers: int = 0,
         ram_available: int | None = None, ram_total: int | None = None,
         vram_total: int | None = None, gpu_offload: bool | None = None,
         kv_bytes_per_element: int = KV_BYTES_F16, estimated_shape: bool = False) -> MemoryPlan:
    """The memory plan for `weights` bytes of a model of `shape` at `n_ctx` tokens.

    `gpu_layers` = -1 offloads every layer; it is ignored (0) when `gpu_offload` is False."""
    if n_ctx <= 0:
        raise ValueError("context size must be positive")
    notes: list[str] = []
    L = max(1, shape.n_layers)
    g = L if gpu_layers < 0 else min(gpu_layers, L)
    if gpu_offload is False and g:
        notes.append("this build of llama.cpp cannot offload to a GPU; everything stays in RAM")
        g = 0
    f = g / L
    kv = kv_cache_bytes(shape, n_ctx, kv_bytes_per_element)
    compute = compute_buffer_bytes(shape, n_ctx)
    vram = round(weights * f) + round(kv * f) + (compute if g else 0)
    ram = (weights - round(weights * f)) + (kv - round(kv * f)) + (0 if g else compute) + RUNTIME_OVERHEAD
    if shape.n_ctx_train and n_ctx > shape.n_ctx_train:
        notes.append(f"context {n_ctx} is longer than the {shape.n_ctx_train} tokens the model was trained on")
    v = verdict(ram, ram_available)
    if g:
        vv = verdict(vram, vram_total)
        if vv == WILL_NOT_FIT:
            notes.append("the offloaded layers do not fit in VRAM; offload fewer layers")
        if _VERDICT_ORDER[vv] > _VERDICT_ORDER[v]:
            v = vv
    return MemoryPlan(n_ctx=n_ctx, weights=weights, kv_cache=kv, compute=compute,
                      overhead=RUNTIME_OVERHEAD, ram=ram, vram=vram, gpu_layers=g, n_layers=L,
                      ram_available=ram_available, ram_total=ram_total, vram_total=vram_total,
                      verdict=v, estimated_shape=estimated_shape, notes=tuple(notes))


def plan_for_info(info: Any, n_ctx: int | None = None, **machine: Any) -> MemoryPlan:
    """Plan for a model whose header was read (gguf_info.ModelInfo or a library summary)."""
    shape = shape_from_info(info)
    estimated = shape is None
    if shape is None:
        shape = typical_shape(_billions(getattr(info, "parameters", None)))
    if n_ctx is None:
        n_ctx = min(getattr(info, "context_length", None) or 2048, 4096)
    return plan(int(info.file_size), shape, n_ctx, estimated_shape=estimated, **machine)


def plan_for_entry(entry: Any, n_ctx: int | None = None, quant: str | None = None,
                   **machine: Any) -> MemoryPlan:
    """Plan for a catalog entry before download: its file size and its shape (or a typical one)."""
    file = entry.file_for(quant) if quant else None
    size = file.size if file else entry.size
    shape = getattr(entry, "shape", None)
    estimated = shape is None
    if shape is None:
        shape = typical_shape(getattr(entry, "parameters_b", None))
    if n_ctx is None:
        n_ctx = min(shape.n_ctx_train or getattr(entry, "context_length", None) or 2048, 4096)
    return plan(int(size or 0), shape, n_ctx, estimated_shape=estimated, **machine)


def machine_kwargs(hw: Any) -> dict[str, Any]:
    """The keyword arguments `plan` takes, from a hardware.detect() result."""
    return {
        "ram_available": getattr(hw, "ram_available", None),
        "ram_total": getattr(hw, "ram_total", None),
        "vram_total": getattr(hw, "vram_total", None),
        "gpu_offload": getattr(hw, "gpu_offload", None),
    }


def _billions(parameters: Any) -> float | None:
    if parameters is None:
        return None
    try:
        value = float(parameters)
    except (TypeError, ValueError):
        return None
    return value / 1e9 if value > 1e6 else value
