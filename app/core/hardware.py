"""What this machine offers: cores, memory, and whether llama.cpp can offload to a GPU.

GPU support is a property of the llama.cpp *build* (CUDA with CMAKE_ARGS="-DGGML_CUDA=on",
Metal by default on Apple Silicon). We never load llama.cpp in the caller's process to find
out: the runner reports it (`llama_supports_gpu_offload` and the system-info string) when it
starts, and `gpu_from_runner` turns that report into a `GpuSupport`. The backend choice
(Auto / CPU / GPU + a layer count) becomes a number of layers to offload in `plan_offload`.
"""

from __future__ import annotations

import ctypes
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

BACKENDS = ("auto", "cpu", "gpu")
ALL_LAYERS = -1  # llama.cpp reads any n_gpu_layers above the model's layer count as "all"


@dataclass(frozen=True)
class GpuSupport:
    offload: bool  # llama_supports_gpu_offload() in the runner's llama.cpp
    kind: str | None  # "metal", "cuda", "vulkan", … or None
    vram_total: int | None = None  # bytes, when it can be known
    detail: str = ""


CPU_ONLY = GpuSupport(offload=False, kind=None, detail="this llama.cpp build has no GPU backend")


@dataclass(frozen=True)
class Hardware:
    cpu_cores: int
    ram_total: int
    ram_available: int
    gpu: GpuSupport

    @property
    def gpu_offload(self) -> bool:
        return self.gpu.offload

    @property
    def gpu_kind(self) -> str | None:
        return self.gpu.kind

    @property
    def vram_total(self) -> int | None:
        return self.gpu.vram_total


@dataclass(frozen=True)
class OffloadPlan:
    n_gpu_layers: int
    backend: str  # "cpu" or the GPU kind
    note: str = ""  # why, when the plan differs from what was asked


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # respects taskset / container limits
    except AttributeError:
        return os.cpu_count() or 1


def default_threads() -> int:
    """llama.cpp decodes fastest with one thread per physical core; leave one for the UI on big machines."""
    n = cpu_cores()
    return max(1, n - 1) if n > 4 else n


def memory() -> tuple[int, int]:
    """(total, available) RAM in bytes."""
    if sys.platform.startswith("linux"):
        fields = {}
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                fields[key] = int(rest.split()[0]) * 1024
        return fields["MemTotal"], fields.get("MemAvailable", fields.get("MemFree", 0))
    if sys.platform == "darwin":
        total = int(subprocess.run(["sysctl", "-n", "hw.memsize"], capture_output=True,
                                   text=True, check=True).stdout)
        return total, _darwin_available(total)
    if sys.platform == "win32":
        return _windows_memory()
    return 0, 0


def process_memory(pid: int | None = None) -> int | None:
    """Resident memory (bytes) of process `pid` (default: this one) plus its children, e.g.
    Corral and its llama.cpp runner; None where the system cannot tell. On Linux from /proc
    (current, not peak); elsewhere this process's peak resident size (getrusage), the best
    the standard library offers there."""
    if sys.platform.startswith("linux"):
        pid = os.getpid() if pid is None else pid
        own = _rss(pid)
        if own is None:
            return None
        return own + sum(_rss(k) or 0 for k in _children(pid))
    if pid is not None and pid != os.getpid():
        return None
    try:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return None
    return peak if sys.platform == "darwin" else peak * 1024  # bytes there, KiB elsewhere


def _rss(pid: int) -> int | None:
    """Resident bytes of `pid` from /proc/PID/statm (its second field, in pages)."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # gone, or not readable
        return None


def _children(pid: int) -> list[int]:
    """The direct children of `pid` (every thread's list: a child belongs to the thread that
    started it)."""
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                kids += [int(k) for k in f.read().split()]
    except (OSError, ValueError):  # a thread ended while being read; a kernel without the file
        pass
    return kids


def _darwin_available(total: int) -> int:
    out = subprocess.run(["vm_stat"], capture_output=True, text=True).stdout
    page = int(re.search(r"page size of (\d+)", out).group(1)) if "page size" in out else 4096
    pages = {k.strip(): int(v.strip(" .")) for k, v in
             (line.split(":", 1) for line in out.splitlines()[1:] if ":" in line)
             if v.strip(" .").isdigit()}
    free = sum(pages.get(k, 0) for k in ("Pages free", "Pages inactive", "Pages speculative"))
    return min(total, free * page)


def _windows_memory() -> tuple[int, int]:
    class MemoryStatus(ctypes.Structure):
        _fields_ = [("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
                    ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                    ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                    ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                    ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]
    status = MemoryStatus()
    status.dwLength = ctypes.sizeof(MemoryStatus)
    ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status))  # type: ignore[attr-defined]
    return status.ullTotalPhys, status.ullAvailPhys


def gpu_from_runner(supports_offload: bool, system_info: str) -> GpuSupport:
    """Name the GPU backend from what the runner's llama.cpp reported about itself."""
    if not supports_offload:
        return CPU_ONLY
    info = system_info.upper()
    if "METAL" in info or (sys.platform == "darwin" and platform.machine() == "arm64"):
        # Apple Silicon shares memory: Metal may use about two thirds of it by default.
        total, _ = memory()
        return GpuSupport(True, "metal", int(total * 2 / 3) if total else None,
                          "Apple Metal (unified memory)")
    if "CUDA" in info:
        return GpuSupport(True, "cuda", _nvidia_vram(), "NVIDIA CUDA")
    for kind in ("VULKAN", "HIP", "SYCL"):
        if kind in info:
            return GpuSupport(True, kind.lower(), None, kind.title())
    return GpuSupport(True, "gpu", None, "GPU offload")


def _nvidia_vram() -> int | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5).stdout
        return int(out.split()[0]) * 1024 * 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def detect(gpu: GpuSupport = CPU_ONLY) -> Hardware:
    total, available = memory()
    return Hardware(cpu_cores=cpu_cores(), ram_total=total, ram_available=available, gpu=gpu)


def plan_offload(backend: str, gpu_layers: int | None, gpu: GpuSupport) -> OffloadPlan:
    """How many layers to give the GPU for the user's choice.

    auto: everything on the GPU when the build can offload (or `gpu_layers` if set), else CPU.
    cpu:  nothing offloaded.
    gpu:  `gpu_layers` (default all); on a build without GPU support we run on the CPU and say why.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "cpu" or gpu_layers == 0:
        return OffloadPlan(0, "cpu")
    layers = ALL_LAYERS if gpu_layers is None or gpu_layers < 0 else gpu_layers
    if not gpu.offload:
        note = "" if backend == "auto" else (
            "GPU requested, but this llama.cpp build has no GPU support: running on the CPU "
            "(see README: 'GPU acceleration')")
        return OffloadPlan(0, "cpu", note)
    return OffloadPlan(layers, gpu.kind or "gpu")
