"""Install Corral's .deb on this machine, use it, time its start-up, and remove it again.

    sudo python3 installers/check_deb.py [dist/corral_X_amd64.deb]

What `.ci/run` runs after `make dist`, so every landing proves the installer still works:
  1. `dpkg -i` the package (installing any missing Depends with apt-get first);
  2. `corral --version`; `corral chat` on a generated model, whose reply must be the same as the
     source checkout's (same seed, temperature 0);
  3. the window, offscreen, for 3 s: still running, nothing alarming on stderr;
  4. time to a shown window: `corral gui --quit-after-show`, measured from process start
     (first launch, and best of three) against the 2 s target;
  5. the sizes (installed app ≤ 250 MB, .deb ≤ 120 MB);
  6. `dpkg -r`, after which none of the package's files (and no /opt/corral) may be left.
The package is removed even when a step fails. Only the repository's Python (PYTHON, default
.venv/bin/python) is used, to generate the test model and for the reference reply.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORRAL = "/usr/bin/corral"
APP_DIR = Path("/opt/corral")
MAX_APP_MB, MAX_DEB_MB, SHOWN_TARGET_S = 250, 120, 2.0
ALARMS = re.compile(r"Traceback|Error|error:|Fatal|Abort|Segmentation|could not|cannot", re.I)


class CheckFailed(Exception):
    pass


def step(title: str) -> None:
    print(f"check_deb: {title}", flush=True)


def run(cmd: list[str], *, env=None, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and res.returncode != 0:
        raise CheckFailed(f"{' '.join(cmd)} exited {res.returncode}\n{res.stdout}{res.stderr}")
    return res


def field(deb: Path, name: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), name]).stdout.strip()


def is_installed(pkg: str) -> bool:
    res = run(["dpkg-query", "-W", "-f=${Status}", pkg], check=False)
    return res.returncode == 0 and res.stdout.strip() == "install ok installed"


def ensure_depends(deb: Path) -> None:
    wanted = [alt.split("(")[0].strip() for dep in field(deb, "Depends").split(",")
              for alt in dep.split("|")[:1] if alt.strip()]
    missing = [pkg for pkg in wanted if not is_installed(pkg)]
    if missing:
        step("installing missing dependencies: " + " ".join(missing))
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], env=env, timeout=600)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env, timeout=900)


def app_env(home: Path) -> dict[str, str]:
    runtime = home / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    return dict(os.environ, CORRAL_HOME=str(home / "corral-home"), XDG_RUNTIME_DIR=str(runtime),
                QT_QPA_PLATFORM="offscreen")


def check_version(env, version: str, flavour: str | None = None) -> None:
    """The installed app names its version and, being an installer build, its flavour."""
    out = run([CORRAL, "--version"], env=env).stdout.strip()
    expected = f"corral {version} ({flavour or 'cpu'} build)"
    if out != expected:
        raise CheckFailed(f"corral --version printed {out!r}, expected {expected!r}")
    print(f"  {out}")


def check_chat(env, python: Path, tmp: Path) -> None:
    made = run([str(python), "-m", "app.testing.models", "tiny", "--out", str(tmp / "models")],
               env=dict(env, PYTHONPATH=str(ROOT)), timeout=600)
    model = made.stdout.strip().splitlines()[-1]
    args = ["chat", model, "-p", "hi", "--max-tokens", "8", "--temp", "0", "--seed", "1", "--threads", "2"]
    res = run([CORRAL, *args], env=env, timeout=300)
    stats = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else ""
    if "tokens" not in stats:
        raise CheckFailed(f"corral chat printed no statistics:\n{res.stderr}")
    print(f"  reply {res.stdout.strip()!r}\n  {stats}")
    source = python.parent / "corral"
    if source.exists():  # the same command from the source checkout must say exactly the same
        ref = run([str(source), *args], env=env, timeout=300)
        if ref.stdout != res.stdout:
            raise CheckFailed(f"installed reply {res.stdout!r} differs from the source checkout's {ref.stdout!r}")
        print("  same reply as the source checkout's corral")


def check_window(env, seconds: float = 3.0) -> None:
    """The window for `seconds`, in a process group of its own (the runner child included), so
    that exactly what this started is stopped afterwards."""
    proc = subprocess.Popen([CORRAL], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass
    alive = proc.poll() is None
    if alive:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    if not alive:
        raise CheckFailed(f"the window exited by itself within {seconds} s (code {proc.returncode}):\n{out}{err}")
    alarms = [line for line in err.splitlines() if ALARMS.search(line)]
    if alarms:
        raise CheckFailed("the window printed errors:\n" + "\n".join(alarms))
    notes = [line for line in err.splitlines() if line.strip()]
    print(f"  ran {seconds:.0f} s offscreen, then stopped" + (f"; Qt said: {notes[0]}" if notes else ""))


def time_to_shown(env) -> tuple[float, int]:
    """Seconds from process start to the app's 'shown in' line; and the app's own figure (ms)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([CORRAL, "gui", "--quit-after-show"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for line in proc.stdout:
            m = re.match(r"shown in (\d+) ms", line)
            if m:
                wall = time.perf_counter() - t0
                proc.communicate(timeout=60)
                return wall, int(m.group(1))
        proc.wait(timeout=60)
        raise CheckFailed(f"`corral gui --quit-after-show` never said 'shown in' (exit {proc.returncode}): "
                          + proc.stderr.read())
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def check_startup(env) -> None:
    runs = [time_to_shown(env) for _ in range(4)]
    first, best = runs[0], min(runs[1:])
    print(f"  shown window: first launch {first[0] * 1000:.0f} ms, best of 3 more {best[0] * 1000:.0f} ms "
          f"(process start to shown; the app's own count from its GUI import: {best[1]} ms)")
    if best[0] > SHOWN_TARGET_S:
        raise CheckFailed(f"the window took {best[0]:.2f} s to show; the target is < {SHOWN_TARGET_S:.0f} s")


def check_sizes(deb: Path) -> None:
    app_bytes = int(run(["du", "-sb", str(APP_DIR)]).stdout.split()[0])
    deb_bytes = deb.stat().st_size
    print(f"  installed app {APP_DIR}: {app_bytes / 1e6:.1f} MB (limit {MAX_APP_MB}); "
          f".deb: {deb_bytes / 1e6:.1f} MB (limit {MAX_DEB_MB})")
    if app_bytes > MAX_APP_MB * 1e6 or deb_bytes > MAX_DEB_MB * 1e6:
        raise CheckFailed("over the size limits")


def remove(pkg: str, files: list[str]) -> None:
    run(["dpkg", "-r", pkg])
    left = [f for f in files if os.path.lexists(f) and not os.path.isdir(f)]
    if left or APP_DIR.exists():
        raise CheckFailed(f"dpkg -r {pkg} left files behind: " + " ".join(left[:10] or [str(APP_DIR)]))
    print(f"  dpkg -r {pkg}: all {len(files)} files gone, no {APP_DIR}")


def main(argv: list[str]) -> int:
    if os.geteuid() != 0:
        print("check_deb: needs root (dpkg -i / dpkg -r): sudo python3 installers/check_deb.py", file=sys.stderr)
        return 2
    debs = [Path(a) for a in argv] or sorted((ROOT / "dist").glob("corral*_*.deb"), key=lambda p: p.stat().st_mtime)
    if not debs:
        print("check_deb: no .deb given and none in dist/ (make dist first)", file=sys.stderr)
        return 2
    deb = debs[-1].resolve()
    python = Path(os.environ.get("PYTHON", ROOT / ".venv" / "bin" / "python"))
    pkg, version = field(deb, "Package"), field(deb, "Version")
    print(f"check_deb: {deb.name} ({pkg} {version})")
    if is_installed(pkg) or is_installed("corral") or is_installed("corral-cuda"):
        for old in ("corral", "corral-cuda"):
            if is_installed(old):
                step(f"removing the {old} already installed")
                run(["dpkg", "-r", old])
    if APP_DIR.exists():
        print(f"check_deb: {APP_DIR} exists but no corral package owns it; not touching it", file=sys.stderr)
        return 1
    t_start = time.perf_counter()
    installed = False
    try:
        with tempfile.TemporaryDirectory(prefix="check-deb-") as tmp_name:
            tmp = Path(tmp_name)
            ensure_depends(deb)
            step("dpkg -i")
            t = time.perf_counter()
            run(["dpkg", "-i", str(deb)], timeout=900)
            installed = True
            print(f"  installed in {time.perf_counter() - t:.1f} s")
            files = [f for f in run(["dpkg", "-L", pkg]).stdout.splitlines() if f.startswith("/")]
            for must in (CORRAL, str(APP_DIR / "corral"), "/usr/share/applications/corral.desktop",
                         "/usr/share/icons/hicolor/256x256/apps/corral.png"):
                if not os.path.exists(must):
                    raise CheckFailed(f"{must} is missing after dpkg -i")
            stamp = json.loads((APP_DIR / "_internal" / "resources" / "build_flavour.json").read_text())
            print(f"  build flavour {stamp['flavour']}, llama-cpp-python {stamp.get('llama_cpp_python')}")
            env = app_env(tmp)
            step("corral --version")
            check_version(env, version, stamp["flavour"])
            step("corral chat on a generated model")
            check_chat(env, python, tmp)
            step("the window, offscreen, 3 s")
            check_window(env)
            step("time to a shown window")
            check_startup(env)
            step("sizes")
            check_sizes(deb)
            step("dpkg -r")
            remove(pkg, files)
            installed = False
    except (CheckFailed, subprocess.TimeoutExpired) as exc:
        print(f"check_deb: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if installed:  # a failed step: still leave the machine as it was
            subprocess.run(["dpkg", "-r", pkg], capture_output=True)
    print(f"check_deb: all checks passed in {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
