"""Backend selection: what runs where for each choice, on each kind of llama.cpp build."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.core import hardware
from app.core.hardware import ALL_LAYERS, CPU_ONLY, GpuSupport, plan_offload

CUDA = GpuSupport(offload=True, kind="cuda", vram_total=8 << 30)
METAL = GpuSupport(offload=True, kind="metal")


@pytest.mark.parametrize("backend, layers, gpu, expected_layers, expected_backend", [
    ("auto", None, CPU_ONLY, 0, "cpu"),
    ("auto", None, CUDA, ALL_LAYERS, "cuda"),
    ("auto", 20, CUDA, 20, "cuda"),
    ("auto", None, METAL, ALL_LAYERS, "metal"),
    ("cpu", None, CUDA, 0, "cpu"),
    ("cpu", 33, METAL, 0, "cpu"),
    ("gpu", None, CUDA, ALL_LAYERS, "cuda"),
    ("gpu", 12, METAL, 12, "metal"),
    ("gpu", 0, CUDA, 0, "cpu"),
    ("gpu", -1, CUDA, ALL_LAYERS, "cuda"),
])
def test_offload_plan(backend, layers, gpu, expected_layers, expected_backend):
    plan = plan_offload(backend, layers, gpu)
    assert (plan.n_gpu_layers, plan.backend) == (expected_layers, expected_backend)
    assert plan.note == ""


def test_gpu_asked_on_a_cpu_only_build_runs_on_cpu_and_says_why():
    plan = plan_offload("gpu", None, CPU_ONLY)
    assert plan.n_gpu_layers == 0 and plan.backend == "cpu"
    assert "no GPU support" in plan.note


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend"):
        plan_offload("tpu", None, CUDA)


@pytest.mark.parametrize("offload, info, kind", [
    (False, "CPU : SSE3 = 1 | AVX2 = 1", None),
    (True, "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : AVX2 = 1", "cuda"),
    (True, "Metal : EMBED_LIBRARY = 1 | CPU : NEON = 1", "metal"),
    (True, "Vulkan : | CPU : AVX2 = 1", "vulkan"),
])
def test_gpu_kind_from_the_runner_report(offload, info, kind):
    assert hardware.gpu_from_runner(offload, info).kind == kind


def test_this_machine_is_described():
    hw = hardware.detect()
    assert hw.cpu_cores >= 1 and hw.ram_total > hw.ram_available > 0
    assert 1 <= hardware.default_threads() <= hw.cpu_cores


def test_the_runner_reports_this_build(tiny_model):
    from app.core.engine import Engine

    with Engine() as eng:
        gpu = eng.gpu_support()
    assert isinstance(gpu.offload, bool)  # CPU-only here; CUDA/Metal builds report True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="current RSS is read from /proc")
def test_memory_in_use_counts_the_children():
    """The status bar's "Memory": this process plus its children (the llama.cpp runner), read
    in core (hardware.process_memory) from /proc, so a child holding 200 MB shows."""
    before = hardware.process_memory()
    assert before is not None and before > 10 * 1024 * 1024  # a Python process with pytest
    child = subprocess.Popen(
        [sys.executable, "-I", "-c", "import sys; b = b'x' * (200 * 1024 * 1024); "
         "print('ready', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with_child = hardware.process_memory()
        assert with_child - before >= 190 * 1024 * 1024
        alone = hardware.process_memory(child.pid)
        assert 200 * 1024 * 1024 <= alone < with_child
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    assert hardware.process_memory(child.pid) is None  # gone: not known, never a crash
