"""The `corral` command line: a second face over app.core (the GUI is the first).

`corral` with no arguments starts the window. Every other command is a module in this
package exposing `register(subparsers)`, which adds its parser and sets `func`. A command
returns an exit code; errors a person can act on are raised as `CliError` (or a core error
of `_common.user_error_types()`) and end as one line on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from app import __version__
from app.cli._common import CliError, user_error_types
from app.core.safetext import terminal_safe

# Modules that add a command; each one exposes register(subparsers).
COMMAND_MODULES = (
    "app.cli.gui_cmd",
    "app.cli.inspect_cmd",
    "app.cli.chat_cmd",
    "app.cli.models_cmd",
    "app.cli.templates_cmd",
    "app.cli.prompt_cmd",
    "app.cli.serve_cmd",
    "app.cli.servers_cmd",
    "app.cli.chats_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="corral", description="Run LLaMA-family language models on your own computer, offline."
    )
    from app.core.resources import version_label

    parser.add_argument("--version", action="version", version=f"corral {version_label(__version__)}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--corral-runner"]:  # a frozen app starts its llama.cpp runner this way
        from app.core.runner import main as runner_main

        return runner_main()
    if argv[:1] == ["--corral-render-worker"]:  # … and its template render worker this way
        from app.core.templates.render_worker import main as render_worker_main

        return render_worker_main()
    parser = build_parser()
    args = parser.parse_args(argv or ["gui"])
    from app.core import statefile

    # A state file set aside or left partly unread is told as one line, whatever the command.
    statefile.add_listener(lambda message: print(f"corral: {message}", file=sys.stderr))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("corral: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
    except CliError as exc:
        print(f"corral: {terminal_safe(exc)}", file=sys.stderr)
        return exc.exit_code
    except user_error_types() as exc:
        # Messages quote outside text (a model's general.name, a file name, a server's words):
        # escapes in it must not reach the terminal.
        print(f"corral: {terminal_safe(exc)}", file=sys.stderr)
        return 1
