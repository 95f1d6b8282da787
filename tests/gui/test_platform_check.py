"""Before Qt starts: a window that cannot open ends `corral` with one line saying what to do,
by an exit code, never Qt's abort (issue 14). The real command under a real X server (Xvfb)."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.gui import platform_check

CORRAL = Path(sys.executable).with_name("corral")


def corral_command() -> list[str]:
    """The command as users run it: the venv's `corral` script (else `python -m app`)."""
    return [str(CORRAL)] if CORRAL.exists() else [sys.executable, "-m", "app"]


@pytest.fixture(scope="module")
def xvfb():
    """A real X server on a display it picks itself (-displayfd: it writes the number when it
    is ready to accept clients, so nothing waits on a guess)."""
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.skip("Xvfb is not installed (.ci/run installs it: apt install xvfb)")
    read, write = os.pipe()
    proc = subprocess.Popen([binary, "-displayfd", str(write), "-screen", "0", "1280x800x24",
                             "-nolisten", "tcp"], pass_fds=(write,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        ready, _, _ = select.select([read], [], [], 30)
        number = os.read(read, 32).decode().strip() if ready else ""
        if not number:
            pytest.fail("Xvfb did not start within 30 s")
        yield f":{number}"
    finally:
        os.close(read)
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def weston(tmp_path_factory):
    """A real Wayland compositor (weston, headless): the XDG_RUNTIME_DIR holding its socket
    "corral-test". Ready once the socket exists; its log is read line by line until then."""
    binary = shutil.which("weston")
    if binary is None:
        pytest.skip("weston is not installed (apt install weston) for the Wayland check")
    runtime = tmp_path_factory.mktemp("xdg-runtime")
    runtime.chmod(0o700)
    proc = subprocess.Popen([binary, "--backend=headless-backend.so", "--socket=corral-test",
                             "--width=1024", "--height=768", "--idle-time=0"],
                            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (runtime / "corral-test").exists():
            ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
            if not ready or not proc.stderr.readline():
                pytest.fail("weston did not start within 30 s")
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep its pipe drained
        yield runtime
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def desktop_env(tmp_path: Path, display: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "LD_LIBRARY_PATH")}
    env.update(DISPLAY=display, CORRAL_HOME=str(tmp_path / "home"), **extra)
    return env


def test_a_broken_xcb_library_ends_corral_with_one_line_and_an_exit_code(xvfb, tmp_path):
    shadow = tmp_path / "lib"
    shadow.mkdir()
    # Not a shared object: the loader finds it first (LD_LIBRARY_PATH) and cannot load it.
    (shadow / "libxcb-cursor.so.0").write_bytes(b"this is not an ELF file\n" * 4)
    proc = subprocess.run(corral_command(), env=desktop_env(tmp_path, xvfb,
                                                            LD_LIBRARY_PATH=str(shadow)),
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)  # an exit code, not -SIGABRT
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("corral: cannot open the window: Qt's X11 (xcb) platform plugin")
    assert f"libxcb-cursor.so.0 (cannot be loaded from {shadow}/libxcb-cursor.so.0" in line
    assert "sudo apt install libxcb-cursor0" in line and "sudo dnf install xcb-util-cursor" in line
    assert proc.stdout == ""
    assert not (tmp_path / "home").exists()  # nothing started: no state written


def test_the_window_opens_under_a_real_x_server(xvfb, tmp_path):
    env = desktop_env(tmp_path, xvfb)
    problem = platform_check.window_problem(dict(env), frozen=False)
    if problem and "platform plugin" in problem:
        pytest.skip(f"this machine lacks the window's libraries (.ci/run installs them): {problem}")
    assert problem is None
    proc = subprocess.run([*corral_command(), "gui", "--quit-after-show"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [line.split(" in ")[0] for line in proc.stdout.splitlines()] == ["shown", "ready"]


def test_a_dead_wayland_socket_falls_back_to_x11(xvfb, tmp_path):
    """A Wayland session whose compositor does not answer, with XWayland: the X11 plugin opens
    the window (QT_QPA_PLATFORM=xcb is chosen before Qt starts)."""
    env = desktop_env(tmp_path, xvfb, WAYLAND_DISPLAY="corral-test-no-such-socket",
                      XDG_RUNTIME_DIR=str(tmp_path))
    chosen = dict(env)
    problem = platform_check.window_problem(chosen, frozen=False)
    if problem and "platform plugin" in problem:
        pytest.skip(f"this machine lacks the window's libraries: {problem}")
    assert problem is None and chosen["QT_QPA_PLATFORM"] == "xcb"
    proc = subprocess.run([*corral_command(), "gui", "--quit-after-show"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("shown in ")


def test_on_wayland_without_xwayland_the_wayland_plugin_opens_the_window(weston, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "DISPLAY", "LD_LIBRARY_PATH")}
    env.update(WAYLAND_DISPLAY="corral-test", XDG_RUNTIME_DIR=str(weston),
               CORRAL_HOME=str(tmp_path / "home"))
    chosen = dict(env)
    problem = platform_check.window_problem(chosen, frozen=False)
    if problem and "platform plugin" in problem:
        pytest.skip(f"this machine lacks the Wayland libraries: {problem}")
    assert problem is None and chosen["QT_QPA_PLATFORM"] == "wayland"
    proc = subprocess.run([*corral_command(), "gui", "--quit-after-show"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [line.split(" in ")[0] for line in proc.stdout.splitlines()] == ["shown", "ready"]


def test_no_display_at_all_says_so_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    env["CORRAL_HOME"] = str(tmp_path / "home")
    proc = subprocess.run(corral_command(), env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert proc.stderr == ("corral: cannot open the window: there is no display (DISPLAY and "
                           "WAYLAND_DISPLAY are not set). Start Corral from a desktop session, "
                           "or use it from this terminal: `corral --help`.\n")


def test_an_x_server_that_does_not_answer_is_named(tmp_path):
    env = desktop_env(tmp_path, ":4711", XAUTHORITY=str(tmp_path / "none"))
    problem = platform_check.window_problem(env, frozen=False)
    if problem and "platform plugin" in problem:
        pytest.skip(f"this machine lacks the window's libraries: {problem}")
    assert problem == ("cannot open the window: no X server accepts a connection at DISPLAY=:4711 "
                       "(is the desktop session running, and is this user allowed to use it?)")


def test_a_wayland_only_session_with_no_compositor_is_named(tmp_path):
    env = {"WAYLAND_DISPLAY": "corral-test-no-such-socket", "XDG_RUNTIME_DIR": str(tmp_path)}
    problem = platform_check.window_problem(env, frozen=False)
    if problem and "platform plugin" in problem:
        pytest.skip(f"this machine lacks the Wayland libraries: {problem}")
    assert problem == ("cannot open the window: no Wayland compositor answers at "
                       "WAYLAND_DISPLAY=corral-test-no-such-socket")


@pytest.mark.parametrize("env, expected", [
    ({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, None),
    ({"QT_QPA_PLATFORM": "minimal"}, None),
    ({"QT_QPA_PLATFORM": "xcb;offscreen"}, None),
    ({"QT_QPA_PLATFORM": "wayland-egl;xcb"}, ["wayland-egl", "xcb"]),
    ({"QT_QPA_PLATFORM": "xcb:nomitshm"}, ["xcb"]),
    ({"DISPLAY": ":0"}, ["xcb"]),
    ({"WAYLAND_DISPLAY": "wayland-0"}, ["wayland"]),
    ({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, ["wayland", "xcb"]),
    ({"XDG_SESSION_TYPE": "wayland", "DISPLAY": ":1"}, ["wayland", "xcb"]),
    ({}, []),
])
def test_the_plugins_qt_will_try(env, expected):
    assert platform_check.candidates(env) == expected


def test_offscreen_and_other_chosen_plugins_skip_the_check():
    for env in ({"QT_QPA_PLATFORM": "offscreen"}, {"QT_QPA_PLATFORM": "vnc"}):
        assert platform_check.window_problem(dict(env), frozen=False) is None
    # A frozen app carries its own libraries; only "no display at all" still applies.
    assert platform_check.window_problem({"DISPLAY": ":4711"}, frozen=True) is None
    assert platform_check.window_problem({}, frozen=True) == platform_check.NO_DISPLAY


def test_the_message_names_every_package_for_apt_and_dnf():
    problems = {"libxcb-icccm.so.4": "not installed", "libxcb-keysyms.so.1": "not installed",
                "libxcb-randr.so.0": "not installed", "libxcb-shape.so.0": "not installed"}
    assert platform_check.library_message("xcb", problems) == (
        "cannot open the window: Qt's X11 (xcb) platform plugin needs system libraries that are "
        "missing or broken: libxcb-icccm.so.4, libxcb-keysyms.so.1, libxcb-randr.so.0, "
        "libxcb-shape.so.0. Install them with `sudo apt install libxcb-icccm4 libxcb-keysyms1 "
        "libxcb-randr0 libxcb-shape0` (Debian/Ubuntu) or `sudo dnf install xcb-util-wm "
        "xcb-util-keysyms libxcb` (Fedora).")
    odd = platform_check.library_message("wayland", {"libwayland-client.so.0": "not installed",
                                                     "libQt6WaylandClient.so.6": "not installed"})
    assert odd.endswith("`sudo apt install libwayland-client0` (Debian/Ubuntu) or "
                        "`sudo dnf install libwayland-client` (Fedora), plus the packages "
                        "providing libQt6WaylandClient.so.6.")
    assert "Qt's Wayland platform plugin" in odd


def test_every_library_the_plugins_link_has_its_packages():
    """The table covers what PySide6's xcb and wayland plugins (and Qt's GUI library) link from
    the system, so no missing library is left without a package to install."""
    pyside = platform_check.pyside_dir()
    qt_lib = pyside / "Qt" / "lib"
    bundled = {p.name for p in qt_lib.iterdir()}
    system_base = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1",
                   "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"}
    needed: set[str] = set()
    for name in ("xcb", "wayland"):
        plugin = platform_check.plugin_file(name, pyside)
        for path in (plugin, qt_lib / "libQt6XcbQpa.so.6", qt_lib / "libQt6WaylandClient.so.6",
                     qt_lib / "libQt6Gui.so.6", qt_lib / "libQt6DBus.so.6"):
            out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True)
            if out.returncode != 0:
                pytest.skip("readelf is not installed")
            needed |= {line.split("[")[1].rstrip("]") for line in out.stdout.splitlines()
                       if "(NEEDED)" in line}
    outside = needed - bundled - system_base
    assert outside <= set(platform_check.PACKAGES), sorted(outside - set(platform_check.PACKAGES))
