"""`corral gui` (also `corral` alone): open the window."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("gui", help="open the Corral window (the default)")
    p.set_defaults(func=run)


def run(args) -> int:
    from app.gui.app import run_app  # Qt is imported only when the window is wanted

    return run_app()
