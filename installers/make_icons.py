"""Render resources/icons/corral.svg into the icon files the installers use.

    python installers/make_icons.py

Writes resources/icons/corral-<N>.png (hicolor sizes, with Qt's SVG renderer from PySide6) and,
when Pillow is importable, corral.ico (Windows) and corral.icns (macOS). The outputs are
committed, so builds never run this; run it after editing the SVG. Pillow is not a dependency
of Corral: use a throwaway venv (python -m venv /tmp/icons && /tmp/icons/bin/pip install
Pillow PySide6-Essentials) if the project's venv lacks it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)


def render(size: int):
    """The SVG drawn at size x size pixels, as a QImage."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(ICONS / "corral.svg"))
    if not renderer.isValid():
        raise SystemExit(f"cannot read {ICONS / 'corral.svg'}")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def write_ico_icns(tmp: Path) -> None:
    try:
        from PIL import Image
    except ImportError:
        print("Pillow not importable: corral.ico and corral.icns left as they are", file=sys.stderr)
        return
    big = tmp / "corral-1024.png"
    render(1024).save(str(big))
    largest = Image.open(big).convert("RGBA")
    # Each .ico size from its own rendering (sharper at 16/24/32 than a downscaled 1024).
    frames = [Image.open(ICONS / f"corral-{s}.png").convert("RGBA") for s in ICO_SIZES]
    frames[-1].save(ICONS / "corral.ico", sizes=[(s, s) for s in ICO_SIZES], append_images=frames[:-1])
    largest.save(ICONS / "corral.icns")  # Pillow writes every standard size up to 1024 from it


def main() -> int:
    import tempfile

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - painting needs it
    for size in PNG_SIZES:
        render(size).save(str(ICONS / f"corral-{size}.png"))
    with tempfile.TemporaryDirectory() as tmp:
        write_ico_icns(Path(tmp))
    for path in sorted(ICONS.iterdir()):
        print(f"{path.stat().st_size:>8}  {path.relative_to(ICONS.parents[1])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
