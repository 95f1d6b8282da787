"""What goes into the frozen app and what stays out: the rules corral.spec applies.

Kept apart from the spec (which only PyInstaller can run) so that tests/cli/test_installers.py can
check them directly. Everything here is plain Python; PyInstaller is imported only by
`prune_orphans`, at build time.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Python modules PyInstaller would otherwise follow into the bundle.
QT_MODULES_OUT = [
    # Qt bindings Corral does not use (superqt, qtpy and pygments reach for some of them).
    "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtQuickWidgets", "PySide6.QtQuickControls2",
    "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets", "PySide6.QtWebEngineQuick",
    "PySide6.QtWebChannel", "PySide6.QtWebSockets", "PySide6.QtMultimedia",
    "PySide6.QtMultimediaWidgets", "PySide6.Qt3DCore", "PySide6.Qt3DRender", "PySide6.QtCharts",
    "PySide6.QtDataVisualization", "PySide6.QtGraphs", "PySide6.QtPdf", "PySide6.QtPdfWidgets",
    "PySide6.QtOpenGL", "PySide6.QtOpenGLWidgets", "PySide6.QtNetwork", "PySide6.QtSql",
    "PySide6.QtTest", "PySide6.QtUiTools", "PySide6.QtDesigner", "PySide6.QtHelp",
    "PySide6.QtPrintSupport", "PySide6.QtXml", "PySide6.QtConcurrent", "PySide6.QtSvgWidgets",
    "PySide6.QtStateMachine", "PySide6.QtRemoteObjects", "PySide6.QtScxml",
]
PY_MODULES_OUT = [
    # Test and build tools, and toolkits Corral never uses.
    "tkinter", "_tkinter", "lib2to3", "pytest", "_pytest", "pytestqt", "importlinter", "grimp",
    "setuptools", "pkg_resources", "pip", "IPython", "matplotlib", "PyQt5", "PyQt6", "PySide2",
    "app.testing",
    # Reached only through optional code paths of libraries Corral uses, never by Corral:
    "llama_cpp.server",  # llama-cpp-python's own OpenAI server (Corral has app.core.server)
    "openai", "jiter",  # Llama.create_chat_completion_openai_v1
    "fastapi", "pydantic", "pydantic_core",  # huggingface_hub's OAuth/webhooks servers, openai
    "fsspec",  # huggingface_hub.HfFileSystem
    "rich",  # httpx2's own command line (httpx2._main)
    "readline",  # the interactive prompt's line editor (GNU readline): Corral has no REPL
]
# Only Linux's keyring backend (SecretStorage) needs cryptography; elsewhere only requests' and
# urllib3's optional pyOpenSSL support would pull it in.
NON_LINUX_MODULES_OUT = ["cryptography"]

# Qt plugin folders kept (everything else under plugins/ goes). No
# wayland-graphics-integration-client: those are for OpenGL surfaces, which a QtWidgets app
# without QOpenGLWidget never makes (on Wayland its windows are shared-memory buffers).
QT_PLUGIN_DIRS = {"platforms", "platformthemes", "styles", "imageformats", "iconengines",
                  "xcbglintegrations", "wayland-shell-integration", "wayland-decoration-client",
                  "platforminputcontexts"}
# qgtk3 would drag the whole GTK stack (GTK, GDK, Pango, Cairo, ATK) into the bundle; the XDG
# desktop portal theme gives native file dialogs on GNOME/KDE without it.
QT_PLUGINS_OUT = {"gtk3"}
# Platform plugins kept: the desktop ones, and offscreen/minimal for headless runs and checks.
QT_PLATFORMS = {"xcb", "wayland", "wayland-egl", "offscreen", "minimal", "windows", "cocoa"}
QT_IMAGEFORMATS = {"svg", "png", "ico", "jpeg", "gif", "icns"}
# Qt libraries (by name prefix) that only the dropped plugins or modules need; on Windows also
# Mesa's software OpenGL and the Direct3D shader compiler, used only by Qt Quick / OpenGL.
QT_LIBS_OUT = ("Qt6Quick", "Qt6Qml", "Qt6Pdf", "Qt6VirtualKeyboard", "Qt6Network", "Qt6OpenGL",
               "Qt6Multimedia", "Qt6WebEngine", "Qt63D", "Qt6Charts", "Qt6Sql", "Qt6Test",
               "Qt6EglFSDeviceIntegration", "Qt6EglFsKmsSupport", "Qt6EglFsKmsGbmSupport",
               "opengl32sw", "d3dcompiler_")
# Linux: libraries every desktop Linux has, which must match the running system rather than
# the build machine (X11/xcb core, Wayland, fontconfig/freetype, GLib, D-Bus, zlib, the C++
# runtime: a bundled older libstdc++ breaks the system's Mesa GL drivers). They come from the
# system, and the .deb depends on them (installers/linux/deb_depends.py). The less common ones
# (xcb-cursor, xcb-icccm, xkbcommon-x11…, which Qt's xcb plugin needs since 6.5) stay bundled.
LINUX_SYSTEM_LIBS = ("libX11.", "libX11-xcb.", "libxcb.so.", "libXau.", "libXdmcp.", "libXext.",
                     "libXrender.", "libfontconfig.", "libfreetype.", "libexpat.", "libpng16.",
                     "libbrotlicommon.", "libbrotlidec.", "libdbus-1.", "libsystemd.", "libgcrypt.",
                     "libgpg-error.", "liblz4.", "libcap.", "liblzma.", "libzstd.", "libbsd.",
                     "libmd.", "libglib-2.0.", "libgthread-2.0.", "libgobject-2.0.", "libgio-2.0.",
                     "libgmodule-2.0.", "libpcre2-8.", "libmount.", "libblkid.", "libselinux.",
                     "libz.", "libstdc++.", "libgcc_s.", "libuuid.", "libwayland-")
# The GPU driver's own libraries: always the user's, never bundled.
DRIVER_LIBS = ("libcuda.so", "nvcuda.dll")
# llama.cpp libraries Corral does not load (multimodal projector support).
LLAMA_LIBS_OUT = ("mtmd", "llava")


def excluded_modules(platform: str = sys.platform) -> list[str]:
    extra = NON_LINUX_MODULES_OUT if platform != "linux" else []
    return QT_MODULES_OUT + PY_MODULES_OUT + extra


# ---- the llama.cpp build's flavour ---------------------------------------------------------------
def detected_flavour(lib_names: list[str]) -> str:
    """cuda | metal | cpu, from the names of the files in llama_cpp/lib: llama.cpp builds each
    GPU backend as a library of its own (ggml-cuda.dll, libggml-cuda.so, libggml-metal.dylib)."""
    names = " ".join(n.lower() for n in lib_names)
    if "ggml-cuda" in names:
        return "cuda"
    if "ggml-metal" in names:
        return "metal"
    return "cpu"


# ---- which collected files to keep -----------------------------------------------------------
def plugin_parts(dest: str) -> tuple[str, str] | None:
    """("platforms", "libqxcb.so") for …/Qt/plugins/platforms/libqxcb.so (or PySide6/plugins/…
    in Windows wheels), else None."""
    parts = Path(dest.replace("\\", "/")).parts
    for i, part in enumerate(parts):
        if part == "plugins" and i >= 1 and parts[i - 1] in ("Qt", "PySide6") and len(parts) - i >= 3:
            return parts[i + 1], parts[-1]
    return None


def plugin_name(filename: str) -> str:
    """libqxcb.so -> xcb, qsvg.dll -> svg, libqcocoa.dylib -> cocoa."""
    stem = filename.split(".")[0]
    stem = stem[3:] if stem.startswith("lib") else stem
    return stem[1:] if stem.startswith("q") else stem


def keep(dest: str, platform: str = sys.platform) -> bool:
    """Whether a file PyInstaller collected (by its path inside the bundle) goes into it."""
    dest = dest.replace("\\", "/")
    name = dest.rsplit("/", 1)[-1]
    if name.startswith(QT_LIBS_OUT) or any(name.startswith("lib" + p) for p in QT_LIBS_OUT):
        return False
    if "/Qt/translations/" in dest or dest.startswith("PySide6/translations/"):
        return False  # Qt's own translations are used only through a QTranslator, which Corral has not
    if name.lower().startswith(DRIVER_LIBS):
        return False
    if platform == "linux" and "/" not in dest and name.startswith(LINUX_SYSTEM_LIBS):
        return False
    if "llama_cpp/lib/" in dest and any(part in name for part in LLAMA_LIBS_OUT):
        return False
    found = plugin_parts(dest)
    if found is None:
        return True
    folder, filename = found
    if folder not in QT_PLUGIN_DIRS or plugin_name(filename) in QT_PLUGINS_OUT:
        return False
    if folder == "platforms":
        return plugin_name(filename) in QT_PLATFORMS
    if folder == "imageformats":
        return plugin_name(filename) in QT_IMAGEFORMATS
    return True


def is_toplevel_lib(dest: str) -> bool:
    """A shared library PyInstaller placed beside the executable only because something needs it."""
    dest = dest.replace("\\", "/")
    name = dest.lower()
    return "/" not in dest and (".so" in name or name.endswith((".dylib", ".dll")))


def prune_orphans(kept: list, dropped: list) -> list:
    """Drop the libraries that only dropped plugins/libraries needed (qgtk3 brings GTK, Pango,
    Cairo, Kerberos…): those reached from what was dropped but not from what is kept.
    Entries are PyInstaller TOC tuples (dest, source, typecode)."""
    from PyInstaller.depend.bindepend import get_imports

    def closure(start, pool) -> set:
        by_name = {Path(e[0]).name.lower(): e for e in pool if is_toplevel_lib(e[0])}  # Windows: any case
        seen, todo = set(), list(start)
        while todo:
            entry = todo.pop()
            try:
                names = {Path(name).name.lower() for name, _ in get_imports(entry[1])}
            except Exception:  # not a binary PyInstaller can read: no dependencies to follow
                names = set()
            for name in names:
                dep = by_name.get(name)
                if dep is not None and name not in seen:
                    seen.add(name)
                    todo.append(dep)
        return seen

    needed = closure([e for e in kept if not is_toplevel_lib(e[0])], kept)
    orphans = closure(dropped, kept + dropped) - needed
    result = [e for e in kept if not (is_toplevel_lib(e[0]) and Path(e[0]).name.lower() in orphans)]
    gone = sorted(Path(e[0]).name for e in kept if e not in result)
    if gone:
        print("corral.spec: not bundling (needed only by dropped plugins):", " ".join(gone))
    return result
