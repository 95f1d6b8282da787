"""`corral models …`: list, import, rm, discover (pull and search come from models_net)."""

from __future__ import annotations

import json
import sys
from functools import wraps

from app.cli._common import CliError
from app.core.safetext import terminal_safe


def register(sub) -> None:
    p = sub.add_parser("models", help="the local model library: list, import, remove, discover")
    msub = p.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)

    q = msub.add_parser("list", help="installed and linked models")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.set_defaults(func=cmd_list)

    q = msub.add_parser("import", help="add a GGUF file from anywhere (copied unless told otherwise)")
    q.add_argument("path", metavar="PATH")
    how = q.add_mutually_exclusive_group()
    how.add_argument("--link", action="store_true", help="use the file where it is, do not copy it")
    how.add_argument("--move", action="store_true", help="move the file into the models folder")
    q.add_argument("--name", help="the model's id (default: the file name without .gguf)")
    q.set_defaults(func=cmd_import)

    q = msub.add_parser("rm", help="delete a model (a linked model is only forgotten)")
    q.add_argument("id", metavar="ID")
    q.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    q.set_defaults(func=cmd_rm)

    q = msub.add_parser("discover", help="models other apps downloaded (HF cache, LM Studio, GPT4All, Ollama)")
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument("--add", metavar="KEY", help="link one of them (by key, name or path); nothing is copied")
    q.set_defaults(func=cmd_discover)

    try:
        from app.cli import models_net
    except ImportError:
        return
    models_net.register(msub)


def _user_errors(func):
    """Core errors a person can act on become one line on stderr and exit 1."""
    @wraps(func)
    def run(args):
        from app.core.catalog import CatalogError
        from app.core.library import LibraryError
        from app.core.statefile import StateFileError
        try:
            return func(args)
        except (LibraryError, StateFileError, CatalogError) as exc:  # SettingsError included
            raise CliError(terminal_safe(exc)) from None
    return run


def _library():
    from app.core.library import Library
    return Library()


def _table(rows: list[list[str]], header: list[str]) -> str:
    """Aligned columns; every cell is made terminal-safe (an id or a file name from outside
    cannot break the table's lines or send escape sequences)."""
    rows = [[terminal_safe(c) for c in r] for r in rows]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


@_user_errors
def cmd_list(args) -> int:
    from app.core.memory_plan import format_bytes
    lib = _library()
    models = lib.scan()
    if args.json:
        out = []
        for m in models:
            d = m.to_dict()
            d["template"], d["template_source"] = lib.template_for(m)
            if d["header"]:
                d["header"].pop("chat_template", None)
            out.append(d)
        print(json.dumps(out, indent=2))
        return 0
    if not models:
        print(f"No models yet. Models folder: {terminal_safe(lib.models_dir)}")
        print("Add one with `corral models pull`, `corral models import PATH` or `corral models discover`.")
        return 0
    rows = []
    for m in models:
        template, _source = lib.template_for(m)
        status = m.status if m.kind == "folder" else f"{m.status}, linked"
        if m.error and m.status == "invalid":
            status += f": {m.error.split(': ', 1)[-1]}"
        rows.append([m.id, format_bytes(m.size) if m.size else "-", m.quantization or "-",
                     m.parameters_label or "-", template or "auto", status])
    print(_table(rows, ["ID", "SIZE", "QUANT", "PARAMS", "TEMPLATE", "STATUS"]))
    return 0


@_user_errors
def cmd_import(args) -> int:
    from app.core.library import COPY, LINK, MOVE
    from app.core.memory_plan import format_bytes
    mode = LINK if args.link else MOVE if args.move else COPY
    model = _library().import_file(args.path, mode, name=args.name)
    verb = {COPY: "Copied", MOVE: "Moved", LINK: "Linked"}[mode]
    print(f"{verb} {terminal_safe(model.id)} ({format_bytes(model.size)}, "
          f"{terminal_safe(model.quantization or '?')}) → {terminal_safe(model.path)}")
    return 0


@_user_errors
def cmd_rm(args) -> int:
    lib = _library()
    model = lib.get(args.id)
    if not args.yes:
        mid, path = terminal_safe(model.id), terminal_safe(model.path)
        what = (f"Delete {mid} ({path})?" if model.kind == "folder" else
                f"Forget linked model {mid}? (the file {path} is kept)")
        if not sys.stdin.isatty():
            raise CliError(f"not deleting {mid} without confirmation: pass --yes", exit_code=2)
        print(f"{what} [y/N] ", end="", file=sys.stderr, flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("Nothing deleted.", file=sys.stderr)
            return 1
    print(lib.delete(model.id).describe())
    return 0


@_user_errors
def cmd_discover(args) -> int:
    from app.core.memory_plan import format_bytes
    lib = _library()
    if args.add:
        model = lib.add_discovered(args.add)
        print(f"Linked {terminal_safe(model.id)} → {terminal_safe(model.path)} (used in place, "
              f"not copied)")
        return 0
    found = lib.discover()
    if args.json:
        print(json.dumps([d.to_dict() for d in found], indent=2))
        return 0
    if not found:
        print("No models found in the Hugging Face cache, LM Studio, GPT4All or Ollama folders.")
        return 0
    rows = [[d.key, d.source_label, format_bytes(d.size),
             f"in library as {d.in_library}" if d.in_library else "-"] for d in found]
    print(_table(rows, ["KEY", "FROM", "SIZE", "LIBRARY"]))
    print("\nLink one (used in place, never copied): corral models discover --add KEY")
    return 0
