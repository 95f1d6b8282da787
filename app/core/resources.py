"""Where the read-only data shipped with Corral lives (resources/: catalog, templates, icons, styles).

In a source checkout (and an editable install) that is the repository's resources/ folder; in a
PyInstaller bundle it is resources/ inside the bundle (sys._MEIPASS). Both are found the same way.
"""

from __future__ import annotations

import sys
from pathlib import Path


def resources_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def resource_path(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)
