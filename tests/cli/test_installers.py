"""Fast checks of the installer recipes (installers/, .github/workflows/release.yml).

The heavy check — build the .deb, install it with dpkg, use it, remove it — is
`make dist-check` (installers/check_deb.py), which .ci/run runs after the test suite.
"""

from __future__ import annotations

import ast
import configparser
import plistlib
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALLERS = ROOT / "installers"
ICONS = ROOT / "resources" / "icons"
WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"

sys.path.insert(0, str(INSTALLERS))
import bundle_rules  # noqa: E402


# ---- the PyInstaller spec and its rules ---------------------------------------------------------
def test_spec_is_python_and_uses_the_rules():
    source = (INSTALLERS / "corral.spec").read_text()
    compile(source, "corral.spec", "exec")
    for needed in ("bundle_rules.keep", "bundle_rules.excluded_modules()", "build_flavour.json",
                   'collect_submodules("app"', "corral_entry.py", '"resources"'):
        assert needed in source
    hook = (INSTALLERS / "hooks" / "hook-llama_cpp.py").read_text()
    assert 'collect_dynamic_libs("llama_cpp")' in hook
    compile((INSTALLERS / "corral_entry.py").read_text(), "corral_entry.py", "exec")


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("platform", ["linux", "win32", "darwin"])
def test_no_module_the_app_imports_is_left_out(platform):
    """A module in the exclude list that app/ imports would make the frozen app fail at run time."""
    excluded = bundle_rules.excluded_modules(platform)
    if platform == "linux":
        assert "cryptography" not in excluded  # keyring's SecretStorage backend needs it there
    for path in (ROOT / "app").rglob("*.py"):
        if "testing" in path.relative_to(ROOT / "app").parts:
            continue  # app.testing is not bundled
        for module in _imported_modules(path):
            clash = [ex for ex in excluded if module == ex or module.startswith(ex + ".")]
            assert not clash, f"{path.relative_to(ROOT)} imports {module}, which corral.spec leaves out"


@pytest.mark.parametrize("dest, platform, kept", [
    ("PySide6/Qt/plugins/platforms/libqxcb.so", "linux", True),
    ("PySide6/Qt/plugins/platforms/libqwayland.so", "linux", True),
    ("PySide6/Qt/plugins/platforms/libqoffscreen.so", "linux", True),
    ("PySide6/Qt/plugins/platforms/libqeglfs.so", "linux", False),
    ("PySide6/Qt/plugins/platforms/libqvnc.so", "linux", False),
    ("PySide6/plugins/platforms/qwindows.dll", "win32", True),
    ("PySide6\\plugins\\platforms\\qdirect2d.dll", "win32", False),
    ("PySide6/Qt/plugins/platforms/libqcocoa.dylib", "darwin", True),
    ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", "linux", False),
    ("PySide6/Qt/plugins/platformthemes/libqxdgdesktopportal.so", "linux", True),
    ("PySide6/Qt/plugins/imageformats/libqsvg.so", "linux", True),
    ("PySide6/Qt/plugins/imageformats/libqtiff.so", "linux", False),
    ("PySide6/Qt/plugins/styles/libqmacstyle.dylib", "darwin", True),
    ("PySide6/plugins/styles/qmodernwindowsstyle.dll", "win32", True),
    ("PySide6/Qt/plugins/wayland-graphics-integration-client/libqt-plugin-wayland-egl.so", "linux", False),
    ("PySide6/Qt/plugins/multimedia/libffmpegmediaplugin.so", "linux", False),
    ("PySide6/Qt/plugins/sqldrivers/libqsqlite.so", "linux", False),
    ("PySide6/Qt/lib/libQt6Widgets.so.6", "linux", True),
    ("PySide6/Qt/lib/libQt6Quick.so.6", "linux", False),
    ("PySide6/opengl32sw.dll", "win32", False),
    ("PySide6/Qt/translations/qtbase_de.qm", "linux", False),
    ("PySide6/translations/qtbase_de.qm", "win32", False),
    ("libX11.so.6", "linux", False),
    ("libstdc++.so.6", "linux", False),
    ("libxcb-cursor.so.0", "linux", True),
    ("libxkbcommon-x11.so.0", "linux", True),
    ("libcuda.so.1", "linux", False),
    ("nvcuda.dll", "win32", False),
    ("cublas64_12.dll", "win32", True),
    ("vcomp140.dll", "win32", True),
    ("llama_cpp/lib/libllama.so", "linux", True),
    ("llama_cpp/lib/libggml-cuda.so", "linux", True),
    ("llama_cpp/lib/libmtmd.so", "linux", False),
    ("resources/catalog.json", "linux", True),
    ("resources/build_flavour.json", "darwin", True),
])
def test_what_goes_into_the_bundle(dest, platform, kept):
    assert bundle_rules.keep(dest, platform) is kept


@pytest.mark.parametrize("libs, flavour", [
    (["libllama.so", "libggml.so", "libggml-base.so", "libggml-cpu.so"], "cpu"),
    (["libllama.so", "libggml-cpu.so", "libggml-cuda.so"], "cuda"),
    (["llama.dll", "ggml-cpu.dll", "ggml-cuda.dll"], "cuda"),
    (["libllama.dylib", "libggml-cpu.dylib", "libggml-metal.dylib", "libggml-blas.dylib"], "metal"),
    (["libllama.dylib", "libggml-cpu.dylib", "libggml-blas.dylib"], "cpu"),
])
def test_flavour_comes_from_the_llama_cpp_libraries(libs, flavour):
    assert bundle_rules.detected_flavour(libs) == flavour


# ---- the release workflow -----------------------------------------------------------------------
def test_workflow_parses_and_builds_on_all_three_oses():
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load(WORKFLOW.read_text())
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "workflow_dispatch" in triggers and "push" in triggers
    build = doc["jobs"]["build"]
    matrix = build["strategy"]["matrix"]["include"]
    oses = " ".join(entry["os"] for entry in matrix)
    for name in ("ubuntu", "windows", "macos"):
        assert name in oses
    flavours = {(entry["os"].split("-")[0], entry["flavour"]) for entry in matrix}
    assert {("ubuntu", "cpu"), ("ubuntu", "cuda"), ("windows", "cpu"), ("windows", "cuda"),
            ("macos", "metal")} <= flavours
    assert any(step.get("uses", "").startswith("actions/upload-artifact") for step in build["steps"])


def test_every_workflow_command_is_a_script_in_installers():
    """So that each step also runs by hand: every `run:` calls a script from installers/."""
    yaml = pytest.importorskip("yaml")
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["build"]["steps"]
    runs = [step["run"] for step in steps if "run" in step]
    assert runs
    for command in runs:
        scripts = [word for word in command.replace('"', " ").split() if word.startswith("installers/")]
        assert scripts, f"workflow step runs {command!r}, not a script from installers/"
        for script in scripts:
            assert (ROOT / script.split("*")[0]).exists() or "*" in script, script


def test_signing_steps_are_switched_on_by_secrets():
    yaml = pytest.importorskip("yaml")
    build = yaml.safe_load(WORKFLOW.read_text())["jobs"]["build"]
    assert build["env"]["CODESIGN_IDENTITY"].startswith("${{ secrets.")
    cert = next(s for s in build["steps"] if "import_certificate.sh" in s.get("run", ""))
    assert "MACOS_CERTIFICATE_P12 != ''" in cert["if"]
    macos = (INSTALLERS / "build_macos.sh").read_text()
    assert 'if [ -n "${CODESIGN_IDENTITY:-}" ]' in macos and "notarytool submit" in macos


# ---- Linux --------------------------------------------------------------------------------------
def _desktop_entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(path.read_text())
    assert parser.sections() == ["Desktop Entry"]
    return dict(parser["Desktop Entry"])


def test_desktop_entry():
    entry = _desktop_entry(INSTALLERS / "linux" / "corral.desktop")
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Corral"
    assert entry["Exec"].split()[0] == "corral"
    assert entry["Icon"] == "corral"  # the hicolor icons are installed as corral.png / corral.svg
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";") and entry["Keywords"].endswith(";")
    known = {"Type", "Name", "GenericName", "Comment", "Exec", "TryExec", "Icon", "Terminal",
             "Categories", "Keywords", "StartupNotify", "StartupWMClass"}
    assert set(entry) <= known
    if shutil.which("desktop-file-validate"):
        res = subprocess.run(["desktop-file-validate", str(INSTALLERS / "linux" / "corral.desktop")],
                             capture_output=True, text=True)
        assert res.returncode == 0 and not res.stdout.strip(), res.stdout + res.stderr


def test_shell_scripts_parse():
    scripts = sorted(INSTALLERS.rglob("*.sh")) + [INSTALLERS / "linux" / "AppRun"]
    assert len(scripts) >= 8
    for script in scripts:
        shell = "sh" if script.name in ("install.sh", "AppRun") else "bash"  # those two are POSIX sh
        res = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
        assert res.returncode == 0, f"{script.name}: {res.stderr}"
        assert script.stat().st_mode & 0o111, f"{script.name} is not executable"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads ELF files")
def test_deb_depends_reads_elf_needed_entries():
    sys.path.insert(0, str(INSTALLERS / "linux"))
    import deb_depends

    found = deb_depends.elf_needed(Path("/bin/sh").resolve())
    assert found is not None
    machine, needed = found
    assert machine in deb_depends.LDCONFIG_ARCH and any(n.startswith("libc.so") for n in needed)
    assert deb_depends.elf_needed(INSTALLERS / "corral.spec") is None


# ---- Windows ------------------------------------------------------------------------------------
@pytest.mark.skipif(not shutil.which("makensis"), reason="makensis (Debian: nsis) not installed")
def test_nsis_recipe_compiles(tmp_path):
    payload = tmp_path / "corral"
    (payload / "_internal" / "resources").mkdir(parents=True)
    for exe in ("corral.exe", "corralw.exe"):
        (payload / exe).write_bytes(b"MZ stand-in")
    (payload / "_internal" / "resources" / "build_flavour.json").write_text("{}")
    out = tmp_path / "Corral-setup.exe"
    res = subprocess.run(["makensis", "-WX", "-V2", "-DVERSION=0.1.0", "-DFLAVOUR=cpu",
                          f"-DPAYLOAD={payload}", f"-DOUTFILE={out}",
                          str(INSTALLERS / "windows" / "corral.nsi")], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert out.read_bytes()[:2] == b"MZ"


def test_nsis_recipe_is_per_user_and_keeps_user_data():
    nsi = "\n".join(line for line in (INSTALLERS / "windows" / "corral.nsi").read_text().splitlines()
                    if not line.lstrip().startswith(";"))  # the instructions, not the comments
    assert "RequestExecutionLevel user" in nsi
    assert 'InstallDir "$LOCALAPPDATA\\Programs\\${APP}"' in nsi
    assert "WriteRegStr HKCU" in nsi and "HKLM" not in nsi
    # The data folder goes only in the optional uninstall section, which is off by default (/o).
    data_lines = [line for line in nsi.splitlines() if "DATA_DIR}" in line and "RMDir" in line]
    assert data_lines == ['  RMDir /r "${DATA_DIR}"']
    assert 'Section /o "un.Also remove my models and chats"' in nsi
    assert 'RMDir /r "$INSTDIR"' not in nsi  # never a recursive delete of a folder the user chose


# ---- macOS --------------------------------------------------------------------------------------
def test_dmg_settings_load_the_way_dmgbuild_loads_them(tmp_path):
    app = tmp_path / "Corral.app"
    settings = {"defines": {"app": str(app), "icon": str(ICONS / "corral.icns")},
                "files": [], "symlinks": {}, "icon_locations": {}}
    source = (INSTALLERS / "macos" / "dmg_settings.py").read_text()
    exec(compile(source, "dmg_settings.py", "exec"), settings, settings)  # as dmgbuild.core.load_settings
    assert settings["files"] == [str(app)]
    assert settings["symlinks"] == {"Applications": "/Applications"}
    assert set(settings["icon_locations"]) == {"Corral.app", "Applications"}
    assert settings["format"] in {"UDZO", "UDBZ", "ULFO", "ULMO"}
    assert Path(settings["icon"]).exists()


def test_macos_plists():
    info = plistlib.loads((INSTALLERS / "macos" / "Info.plist").read_bytes())
    assert info["CFBundleName"] == "Corral" and info["CFBundlePackageType"] == "APPL"
    assert info["CFBundleIdentifier"].count(".") >= 2
    assert info["CFBundleIconFile"] == "corral.icns" and info["NSHighResolutionCapable"] is True
    entitlements = plistlib.loads((INSTALLERS / "macos" / "entitlements.plist").read_bytes())
    assert entitlements["com.apple.security.cs.allow-unsigned-executable-memory"] is True


# ---- the icon -----------------------------------------------------------------------------------
def test_icons_are_rendered_from_the_svg():
    ET.parse(ICONS / "corral.svg")
    for size in (16, 24, 32, 48, 64, 128, 256, 512):
        head = (ICONS / f"corral-{size}.png").read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", head[16:24]) == (size, size)
    ico = (ICONS / "corral.ico").read_bytes()
    assert ico[:4] == b"\0\0\1\0" and struct.unpack("<H", ico[4:6])[0] >= 6  # several sizes
    assert (ICONS / "corral.icns").read_bytes()[:4] == b"icns"
