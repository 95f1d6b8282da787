"""Where the read-only data shipped with Corral lives (resources/: catalog, templates, icons, styles).

In a source checkout (and an editable install) that is the repository's resources/ folder; in a
PyInstaller bundle it is resources/ inside the bundle (sys._MEIPASS). Both are found the same way.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def resources_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def resource_path(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)


def build_info() -> dict | None:
    """What an installer build is (flavour cpu|cuda|metal, versions), stamped by installers/;
    None in a source checkout."""
    try:
        return json.loads(resource_path("build_flavour.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def version_label(version: str) -> str:
    info = build_info()
    return f"{version} ({info.get('flavour', '?')} build)" if info else f"{version} (from source)"
