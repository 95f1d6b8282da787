"""Can Qt open a window here? Asked before Qt is imported, so that a missing system library or a
missing display ends in one line that says what to do, instead of Qt's abort (SIGABRT) after a
paragraph that, for the xcb plugin, names only `libxcb-cursor0` whatever is really missing.

    problem = window_problem()   # None: go ahead (QT_QPA_PLATFORM may have been set)

How: the platform plugin Qt will use (`QT_QPA_PLATFORM`, else Wayland and/or X11 from the
environment, as Qt chooses) is opened with the system's own `dlopen` in this process, which
loads every library it links exactly as Qt's plugin loader will a moment later; so success costs
nothing extra (the libraries stay loaded for Qt) and a failure names its library. Only on a
failure is each library the plugin needs opened one by one, to name all the missing packages at
once. Then the display itself is tried (`xcb_connect` / `wl_display_connect`), since Qt aborts
on a display it cannot reach too.

No PySide6 import here (the PySide6 folder is found with importlib's spec), no Qt: this module
must stay importable where Qt cannot load. Linux only. A frozen app skips the library check: the
installers carry or declare their own libraries. `QT_QPA_PLATFORM` naming any other plugin
(offscreen, minimal, vnc, eglfs…) skips everything: that is a choice the user made.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path
from typing import Mapping, MutableMapping

# soname → (Debian/Ubuntu package, Fedora package): every library outside the PySide6 wheel
# that Qt's xcb or wayland plugin links, directly or through libQt6Gui / libQt6DBus.
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libz.so.1": ("zlib1g", "zlib"),
    "libzstd.so.1": ("libzstd1", "libzstd"),
}
_GUI_LIBS = ("libGL.so.1", "libEGL.so.1", "libfontconfig.so.1", "libfreetype.so.6",
             "libdbus-1.so.3", "libglib-2.0.so.0", "libgthread-2.0.so.0", "libz.so.1",
             "libzstd.so.1", "libxkbcommon.so.0", "libX11.so.6")
# What each plugin needs besides the GUI libraries (the order is the order of the message).
PLUGIN_LIBS: dict[str, tuple[str, ...]] = {
    "xcb": tuple(n for n in PACKAGES if n.startswith(("libxcb", "libX11-xcb", "libxkbcommon-x11")))
    + _GUI_LIBS,
    "wayland": ("libwayland-client.so.0", "libwayland-cursor.so.0") + _GUI_LIBS,
}
PLUGIN_NAMES = {"xcb": "X11 (xcb)", "wayland": "Wayland"}
_RTLD_LAZY = 0x0001  # as Qt's plugin loader opens plugins (not RTLD_NOW, which ctypes forces)


class _Dl:
    """libc's dlopen/dlerror (ctypes.CDLL always adds RTLD_NOW and hides the loader's message)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None)
        self.dlopen = libc.dlopen
        self.dlopen.argtypes, self.dlopen.restype = [ctypes.c_char_p, ctypes.c_int], ctypes.c_void_p
        self.dlerror = libc.dlerror
        self.dlerror.argtypes, self.dlerror.restype = [], ctypes.c_char_p

    def open(self, name: str | os.PathLike) -> str | None:
        """None when `name` (and every library it links) loads; else the loader's message. The
        library stays loaded: Qt opens the very same files next, at no extra cost."""
        self.dlerror()
        if self.dlopen(os.fsencode(name), _RTLD_LAZY):
            return None
        err = self.dlerror()
        return os.fsdecode(err) if err else f"{name}: cannot be loaded"


def _culprit(error: str) -> tuple[str, str]:
    """('libxcb-icccm.so.4', 'not installed') from 'libxcb-icccm.so.4: cannot open shared object
    file: No such file or directory'; ('libxcb-cursor.so.0', 'cannot be loaded from /x/libxcb-
    cursor.so.0: invalid ELF header') for a file found but broken."""
    path, _, why = error.partition(": ")
    name = os.path.basename(path)
    if "No such file" in why:
        return name, "not installed"
    return name, f"cannot be loaded from {path}: {why}" if os.sep in path else f"cannot be loaded: {why}"


def pyside_dir() -> Path | None:
    """The installed PySide6 package folder, found without importing it."""
    try:
        spec = importlib.util.find_spec("PySide6")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def plugin_file(name: str, pyside: Path | None = None) -> Path | None:
    """PySide6's platform plugin file for `name` ('xcb', 'wayland', 'wayland-egl'…), if there."""
    pyside = pyside or pyside_dir()
    if pyside is None:
        return None
    folder = pyside / "Qt" / "plugins" / "platforms"
    for candidate in (f"libq{name}.so", "libqwayland.so" if name.startswith("wayland") else None):
        if candidate and (folder / candidate).is_file():
            return folder / candidate
    return None


def missing_libraries(plugin: str, pyside: Path | None = None,
                      dl: _Dl | None = None) -> dict[str, str] | None:
    """{soname: why} for what keeps `plugin` ('xcb' or 'wayland') from loading ({} when it loads);
    None when it cannot be told (no PySide6 plugin file here)."""
    path = plugin_file(plugin, pyside)
    if path is None:
        return None
    dl = dl or _Dl()
    first = dl.open(path)
    if first is None:
        return {}
    # Each library on its own, to name them all at once (libraries the wheel ships are tried
    # from its own lib folder, as the plugin's RUNPATH finds them).
    qt_lib = path.parent.parent.parent / "lib"
    problems: dict[str, str] = {}
    for soname in PLUGIN_LIBS[_family(plugin)]:
        local = qt_lib / soname
        error = dl.open(local if local.exists() else soname)
        if error is not None:
            name, why = _culprit(error)
            problems.setdefault(name, why)
    if not problems:  # something outside the table (a Qt library, a symbol version…)
        name, why = _culprit(first)
        problems[name] = why
    return problems


def _family(plugin: str) -> str:
    return "wayland" if plugin.startswith("wayland") else "xcb"


def missing_packages(problems: Mapping[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(Debian packages, Fedora packages, sonames no package is known for), without repeats."""
    debian: list[str] = []
    fedora: list[str] = []
    unknown: list[str] = []
    for soname in problems:
        if soname not in PACKAGES:
            unknown.append(soname)
            continue
        deb, rpm = PACKAGES[soname]
        debian += [deb] if deb not in debian else []
        fedora += [rpm] if rpm not in fedora else []
    return debian, fedora, unknown


def library_message(plugin: str, problems: Mapping[str, str]) -> str:
    """One line: what is missing, and the apt and dnf commands that install it."""
    libs = ", ".join(name if why == "not installed" else f"{name} ({why})"
                     for name, why in problems.items())
    debian, fedora, unknown = missing_packages(problems)
    text = (f"cannot open the window: Qt's {PLUGIN_NAMES[_family(plugin)]} platform plugin needs "
            f"system libraries that are missing or broken: {libs}.")
    if debian:
        text += (f" Install them with `sudo apt install {' '.join(debian)}` (Debian/Ubuntu) or "
                 f"`sudo dnf install {' '.join(fedora)}` (Fedora)")
        text += f", plus the packages providing {', '.join(unknown)}." if unknown else "."
    else:
        text += " Install the packages that provide them with your distribution's package manager."
    return text


# --------------------------------------------------------------------------- the display

def _x11_reachable(dl: _Dl, display: str) -> str | None:
    """None when the X server at `display` accepts a connection; else why not."""
    if dl.open("libxcb.so.1") is not None:
        return None  # cannot tell: let Qt try
    xcb = ctypes.CDLL("libxcb.so.1")
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    conn = xcb.xcb_connect(os.fsencode(display), ctypes.byref(ctypes.c_int()))
    try:
        error = xcb.xcb_connection_has_error(conn)
    finally:
        xcb.xcb_disconnect(conn)
    if not error:
        return None
    return (f"cannot open the window: no X server accepts a connection at DISPLAY={display} "
            "(is the desktop session running, and is this user allowed to use it?)")


def _wayland_reachable(dl: _Dl, display: str | None, runtime_dir: str | None) -> str | None:
    """None when the compositor at `display` (None: the default, wayland-0) answers; a relative
    name is looked for in `runtime_dir` (XDG_RUNTIME_DIR), as Qt will."""
    if dl.open("libwayland-client.so.0") is not None:
        return None
    wl = ctypes.CDLL("libwayland-client.so.0")
    wl.wl_display_connect.argtypes, wl.wl_display_connect.restype = [ctypes.c_char_p], ctypes.c_void_p
    wl.wl_display_disconnect.argtypes = [ctypes.c_void_p]
    name = display or "wayland-0"
    if not os.path.isabs(name) and runtime_dir:
        name = os.path.join(runtime_dir, name)
    conn = wl.wl_display_connect(os.fsencode(name))
    if conn:
        wl.wl_display_disconnect(conn)
        return None
    return (f"cannot open the window: no Wayland compositor answers at "
            f"WAYLAND_DISPLAY={display or 'wayland-0'}")


NO_DISPLAY = ("cannot open the window: there is no display (DISPLAY and WAYLAND_DISPLAY are not "
              "set). Start Corral from a desktop session, or use it from this terminal: "
              "`corral --help`.")


def candidates(env: Mapping[str, str]) -> list[str] | None:
    """The platform plugins Qt will try, in its order; None when QT_QPA_PLATFORM names one this
    check does not know (offscreen, minimal, vnc, eglfs…): nothing to check then."""
    chosen = env.get("QT_QPA_PLATFORM", "").strip()
    if chosen:
        names = [n.split(":", 1)[0].strip() for n in chosen.split(";") if n.strip()]
        if not names or any(n != "xcb" and not n.startswith("wayland") for n in names):
            return None
        return names
    found = []
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
        found.append("wayland")  # Qt tries Wayland first in a Wayland session, then X11
    if env.get("DISPLAY"):
        found.append("xcb")
    return found


def window_problem(env: MutableMapping[str, str] | None = None, *,
                   frozen: bool | None = None) -> str | None:
    """None when a window can open (QT_QPA_PLATFORM is set in `env` when only a plugin that is
    not Qt's first choice works); else the one-line message for the user. Never raises."""
    if not sys.platform.startswith("linux"):
        return None
    env = os.environ if env is None else env
    names = candidates(env)
    if names is None:
        return None
    if not names:
        return NO_DISPLAY
    if frozen if frozen is not None else getattr(sys, "frozen", False):
        return None
    try:
        return _check(names, env)
    except Exception:  # noqa: BLE001 - a fault in this check must never keep the window shut
        return None


def _check(names: list[str], env: MutableMapping[str, str]) -> str | None:
    dl = _Dl()
    failures: list[str] = []
    for name in names:
        problems = missing_libraries(name, dl=dl)
        if problems is None:
            return None  # no plugin file where PySide6 keeps them: cannot tell, let Qt try
        if problems:
            failures.append(library_message(name, problems))
            continue
        if name.startswith("wayland"):
            unreachable = _wayland_reachable(dl, env.get("WAYLAND_DISPLAY"),
                                             env.get("XDG_RUNTIME_DIR"))
        elif env.get("DISPLAY"):
            unreachable = _x11_reachable(dl, env["DISPLAY"])
        else:  # QT_QPA_PLATFORM=xcb with no DISPLAY
            unreachable = NO_DISPLAY.replace("DISPLAY and WAYLAND_DISPLAY are", "DISPLAY is")
        if unreachable:
            failures.append(unreachable)
            continue
        if name != names[0] or (name.startswith("wayland") and not env.get("DISPLAY")):
            env["QT_QPA_PLATFORM"] = name  # Qt would try the one that fails first, or pick xcb
        return None
    return failures[0]


def main(argv: list[str] | None = None) -> int:
    """`python -m app.gui.platform_check --debian-packages`: the Debian packages the X11 window
    still needs, space-separated (nothing when none); the Makefile installs them as root."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["--debian-packages"]:
        print("usage: python -m app.gui.platform_check --debian-packages", file=sys.stderr)
        return 2
    problems = missing_libraries("xcb") or {}
    print(" ".join(missing_packages(problems)[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
