"""app.core is the product without a face: it must never import Qt, the GUI or the CLI."""

from __future__ import annotations

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import app.core

ROOT = Path(__file__).resolve().parents[2]


def test_importing_every_core_module_loads_no_qt():
    names = [m.name for m in pkgutil.walk_packages(app.core.__path__, "app.core.")]
    code = ("import sys\n" + "".join(f"import {n}\n" for n in names) +
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('PySide6', 'shiboken6', 'superqt') or m.startswith(('app.gui', 'app.cli')))\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
    assert len(names) >= 8


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    out = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


def test_building_the_cli_imports_nothing_heavy():
    """Every command builds the whole parser: keep `corral inspect` fast (< 0.3 s on a 1.1B file)."""
    code = ("import sys, app.cli\napp.cli.build_parser()\n"
            "heavy = ('jinja2', 'llama_cpp', 'huggingface_hub', 'PySide6', 'numpy', 'gguf', 'httpx')\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


NO_QT = ROOT / "tests" / "noqt"


@pytest.mark.skipif(str(NO_QT) not in [str(Path(p).resolve()) for p in sys.path if p],
                    reason="runs in `make test`'s Qt-free step (PYTHONPATH=tests/noqt)")
def test_the_core_tests_run_where_qt_cannot_be_imported():
    """`make test` runs tests/core with tests/noqt first on the path: Qt cannot be imported in
    this process nor in the `corral` children the core tests start, and they still pass."""
    for name in ("PySide6", "shiboken6", "superqt"):
        with pytest.raises(ImportError, match="blocked here"):
            __import__(name)
    child = subprocess.run([sys.executable, "-c", "import PySide6"], capture_output=True,
                           text=True, cwd=ROOT)
    assert child.returncode == 1 and "PySide6 is blocked here" in child.stderr
