"""Throughput of `corral models pull` against `curl -o`, same file, same local hub, one run.

    python bench/download.py [--file PATH] [--repeat N]

Serves the ~620 MB TinyLlama-shaped model (`python -m app.testing.models tinyllama_shape`, or
--file, or else a 620 MB random file made once in a cache folder) from the local test hub on
127.0.0.1, then times, as whole commands:
  - `corral models pull REPO FILE` with CORRAL_HOME in a temporary folder (header check, resumable
    partial file, sha256 while writing, fsync, rename, library registration: all included);
  - `curl -o` of the same resolve URL (no verification, no fsync: the file may still be only in
    the page cache when curl exits);
  - `curl -o` then `sync FILE` (coreutils: fsync), the same durability as ours, for reference.
Prints the throughputs in MB/s (10^6 bytes/s) and the ratio ours/curl (target ≥ 0.9), first with
no limit (on 127.0.0.1 that compares CPU and disk costs: Python's HTTP stack, sha256 and fsync
against curl's bare copy into memory; when the loopback is faster than the disk writes, no
download that waits for its bytes to reach the disk can keep up) and then with the hub limited
to 100 MB/s, like a fast real connection (--rates changes the list). With --repeat N each
command runs N times and the best run counts. Before each command the OS is asked to sync, so
none pays for another's writes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.testing.hub_server import LocalHub, corral_command  # noqa: E402

REPO = "corral-bench/TinyLlama-shape-GGUF"
RANDOM_SIZE = 620 * 1000 * 1000

def model_file() -> Path:
    """The generated TinyLlama-shaped model, else a random file of 620 MB (made once, cached)."""
    try:
        out = subprocess.run([sys.executable, "-m", "app.testing.models", "tinyllama_shape"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.strip().splitlines()
        if out and Path(out[-1]).is_file():
            return Path(out[-1])
    except subprocess.CalledProcessError as exc:
        print(f"(no generated model: {exc.stderr.strip().splitlines()[-1:]}; using random bytes)", file=sys.stderr)
    import platformdirs
    path = Path(platformdirs.user_cache_dir("corral-bench", appauthor=False)) / "random-620MB.gguf"
    if not path.is_file() or path.stat().st_size != RANDOM_SIZE:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            left = RANDOM_SIZE
            while left:
                block = os.urandom(min(left, 8 << 20))
                f.write(block)
                left -= len(block)
        os.replace(tmp, path)
    return path


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    if hasattr(os, "sync"):
        os.sync()  # neither command pays for the other's data still being written to disk
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    return elapsed, proc


def compare(hub: LocalHub, tmp: Path, source: Path, rate: float, repeat: int) -> None:
    """Time both commands `repeat` times with the hub limited to `rate` MB/s (0: no limit); print."""
    name, size = source.name, source.stat().st_size
    if rate:
        hub.set_faults(REPO, name, throttle=int(rate * 1e6))
    else:
        hub.clear_faults()
    url = hub.resolve_url(REPO, name)
    env = {**os.environ, "HF_ENDPOINT": hub.url, "PYTHONPATH": str(ROOT)}  # Corral never uses Xet
    env.pop("HF_TOKEN", None)
    ours, curl, curl_sync, transfer = [], [], [], []
    for run in range(repeat):
        home = tmp / f"home{run}"
        seconds, proc = timed([*corral_command(), "models", "pull", REPO, name], {**env, "CORRAL_HOME": str(home)})
        ours.append(seconds)
        got = Path(proc.stdout.strip().splitlines()[-1])
        assert got.stat().st_size == size, f"{got} has the wrong size"
        m = re.search(r"in ([\d.]+) s", proc.stderr)
        if m:
            transfer.append(float(m.group(1)))
        shutil.rmtree(home)

        out = tmp / "curl.bin"
        seconds, _ = timed(["curl", "-sS", "--fail", "-o", str(out), url], env)
        curl.append(seconds)
        assert out.stat().st_size == size
        out.unlink()

        seconds, _ = timed(["sh", "-c", 'curl -sS --fail -o "$1" "$2" && sync "$1"', "sh", str(out), url], env)
        curl_sync.append(seconds)
        assert out.stat().st_size == size
        out.unlink()

    best_ours, best_curl, best_sync = min(ours), min(curl), min(curl_sync)
    mb = size / 1e6
    print(f"\nhub limited to {rate:g} MB/s (a real connection):" if rate else
          "\nno rate limit (127.0.0.1: this measures CPU and disk, not a network):")
    print(f"  corral models pull: {best_ours:6.2f} s  {mb / best_ours:7.1f} MB/s  (whole command: start-up, "
          f"header check, sha256, fsync, rename, registration)")
    if transfer:
        print(f"    of which download + verify: {min(transfer):.2f} s  {mb / min(transfer):7.1f} MB/s")
    print(f"  curl -o:            {best_curl:6.2f} s  {mb / best_curl:7.1f} MB/s")
    print(f"  curl -o; sync FILE: {best_sync:6.2f} s  {mb / best_sync:7.1f} MB/s  (on disk when it ends, as ours)")
    print(f"  ratio ours/curl:    {best_curl / best_ours:.2f}  (target >= 0.9)")
    print(f"  ratio ours/(curl; sync): {best_sync / best_ours:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="serve this file instead of the generated model")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command; the best counts")
    parser.add_argument("--rates", default="0,100", metavar="MB/S,...",
                        help="hub speed limits to compare at, 0 for none (default: 0,100)")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is not installed")
    rates = [float(r) for r in args.rates.split(",")]
    source = args.file or model_file()
    print(f"file: {source} ({source.stat().st_size / 1e6:.1f} MB), served by the local hub on 127.0.0.1")
    with LocalHub() as hub, tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        hub.add_file(REPO, source.name, source)
        for rate in rates:
            compare(hub, Path(tmp), source, rate, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
