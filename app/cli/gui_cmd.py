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
    from app.cli._common import CliError
    from app.gui.platform_check import window_problem

    # Before Qt is imported: where Qt's platform plugin cannot load (missing system libraries,
    # no display), Qt aborts the process with a signal; say what to do instead.
    problem = window_problem()
    if problem:
        raise CliError(problem)
    from app.gui.app import run_app  # Qt is imported only when the window is wanted

    return run_app(quit_after_show=args.quit_after_show)
