"""`corral gui` (also `corral` alone): open the window."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("gui", help="open the Corral window (the default)")
    # For start-up measurements and installer checks: print how long the window took to show,
    # then quit. Not for users, so not in the help.
    p.add_argument("--quit-after-show", action="store_true", help=argparse_suppress())
    p.set_defaults(func=run)


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


def run(args) -> int:
    from app.gui.app import run_app  # Qt is imported only when the window is wanted

    return run_app(quit_after_show=args.quit_after_show)
