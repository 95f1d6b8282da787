"""Memory plans with known numbers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.core import gguf_info
from app.core.catalog import load_catalog
from app.core.memory_plan import (FITS, RUNTIME_OVERHEAD, TIGHT, UNKNOWN, WILL_NOT_FIT, ArchShape,
                                  GiB, MiB, compute_buffer_bytes, format_bytes, kv_cache_bytes,
                                  machine_kwargs, plan, plan_for_entry, plan_for_info,
                                  typical_shape, verdict)

TINYLLAMA = ArchShape(n_layers=22, n_embd=2048, n_head=32, n_head_kv=4, n_vocab=32000, n_ctx_train=2048)
LLAMA2_7B = ArchShape(32, 4096, 32, 32, 32000, 4096)


def test_kv_cache_with_known_numbers():
    assert TINYLLAMA.kv_width == 256
    assert kv_cache_bytes(TINYLLAMA, 2048) == 22 * 2048 * 256 * 2 * 2 == 44 * MiB
    assert kv_cache_bytes(LLAMA2_7B, 4096) == 2 * GiB            # 32 × 4096 × 4096 × 2 × 2
    assert kv_cache_bytes(LLAMA2_7B, 4096, bytes_per_element=1) == GiB  # q8_0-ish cache


def test_cpu_plan_adds_weights_kv_compute_and_overhead():
    p = plan(4081004224, LLAMA2_7B, 4096, ram_available=16 * GiB, ram_total=16 * GiB)
    assert p.compute == compute_buffer_bytes(LLAMA2_7B, 4096) == 4 * 512 * (4096 * 32 + 32000)
    assert p.ram == 4081004224 + 2 * GiB + p.compute + RUNTIME_OVERHEAD
    assert p.vram == 0 and p.gpu_layers == 0 and p.total == p.ram
    assert p.verdict == FITS
    assert p.text() == "needs 6.73 GB of 17.2 GB (17.2 GB free): fits"  # decimal units
    assert "KV cache 2.15 GB (4096 tokens)" in p.breakdown()
    assert p.to_dict()["text"] == p.text()


@pytest.mark.parametrize("need, available, expected", [
    (8.5, 10, FITS), (8.6, 10, TIGHT), (10, 10, TIGHT), (10.1, 10, WILL_NOT_FIT), (1, None, UNKNOWN)])
def test_verdict_margin(need, available, expected):
    avail = None if available is None else int(available * GiB)
    assert verdict(int(need * GiB), avail) == expected


def test_gpu_layers_split_weights_and_kv_proportionally():
    weights = 4 * GiB
    half = plan(weights, LLAMA2_7B, 4096, gpu_layers=16, ram_available=16 * GiB, vram_total=8 * GiB,
                gpu_offload=True)
    assert half.gpu_layers == 16
    assert half.vram == weights // 2 + GiB + half.compute
    assert half.ram == weights // 2 + GiB + RUNTIME_OVERHEAD
    full = plan(weights, LLAMA2_7B, 4096, gpu_layers=-1, ram_available=16 * GiB, vram_total=8 * GiB)
    assert full.gpu_layers == 32 and full.ram == RUNTIME_OVERHEAD
    assert full.vram == weights + 2 * GiB + full.compute and full.verdict == FITS
    assert "VRAM of 8.59 GB" in full.text()
    too_big = plan(weights, LLAMA2_7B, 4096, gpu_layers=-1, ram_available=16 * GiB, vram_total=4 * GiB)
    assert too_big.verdict == WILL_NOT_FIT and "offload fewer layers" in too_big.notes[0]
    no_gpu = plan(weights, LLAMA2_7B, 4096, gpu_layers=-1, gpu_offload=False)
    assert no_gpu.vram == 0 and no_gpu.gpu_layers == 0 and "cannot offload" in no_gpu.notes[0]


def test_will_not_fit_and_tight_against_small_machines():
    p = plan(4 * GiB, LLAMA2_7B, 4096, ram_available=4 * GiB, ram_total=8 * GiB)
    assert p.verdict == WILL_NOT_FIT and p.text().endswith("will not fit")
    p = plan(4 * GiB, LLAMA2_7B, 2048, ram_available=int(5.6 * GiB))
    assert p.verdict == TIGHT


def test_plan_for_a_real_header(tiny_model):
    info = gguf_info.inspect(tiny_model)
    p = plan_for_info(info, 2048, ram_available=GiB)
    # tiny: 2 layers, 64 wide, 4 heads, 2 KV heads -> KV width 32
    assert p.kv_cache == 2 * 2048 * 32 * 2 * 2
    assert p.weights == info.file_size and not p.estimated_shape and p.verdict == FITS
    assert plan_for_info(info).n_ctx == 2048  # the trained context, at most 4096


def test_plan_for_catalog_entries_before_download():
    catalog = load_catalog()
    tiny = plan_for_entry(catalog.get("tinyllama-1.1b-chat"), 2048)
    assert tiny.kv_cache == 44 * MiB and tiny.weights == 668788096 and not tiny.estimated_shape
    q6 = plan_for_entry(catalog.get("mistral-7b-instruct-v0.2"), quant="Q6_K")
    assert q6.weights == 5942065440 and q6.n_ctx == 4096
    unknown = SimpleNamespace(size=4 * GiB, shape=None, parameters_b=13.0, context_length=4096,
                              file_for=lambda q: None)
    est = plan_for_entry(unknown)
    assert est.estimated_shape and est.n_layers == 40 and est.text().endswith("(estimate)")


def test_typical_shapes_and_machine_numbers():
    assert typical_shape(7).n_layers == 32 and typical_shape(None).n_layers == 32
    assert typical_shape(1.1).n_head_kv == 4 and typical_shape(70).n_layers == 80
    hw = SimpleNamespace(ram_total=16 * GiB, ram_available=10 * GiB, vram_total=None, gpu_offload=False)
    assert machine_kwargs(hw) == {"ram_total": 16 * GiB, "ram_available": 10 * GiB,
                                  "vram_total": None, "gpu_offload": False}
    # One unit system, decimal and labelled (as the hub and the file managers count), to three
    # significant digits; a value that rounds up to 1000 moves to the next unit.
    assert format_bytes(5_140_000_000) == "5.14 GB" and format_bytes(44 * MiB) == "46.1 MB"
    assert format_bytes(619_914_016) == "620 MB" and format_bytes(843_552) == "844 kB"
    assert format_bytes(999_600) == "1 MB" and format_bytes(16 * GiB) == "17.2 GB"
    assert format_bytes(512) == "512 B" and format_bytes(None) == "?"
    with pytest.raises(ValueError):
        plan(1, TINYLLAMA, 0)
