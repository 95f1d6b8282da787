"""`corral templates list [--json]`: the prompt templates Corral knows, built-in and your own."""

from __future__ import annotations

import json
import sys



def register(sub) -> None:
    p = sub.add_parser("templates", help="list the prompt templates",
                       description="Prompt templates decide the exact text a model is sent.")
    actions = p.add_subparsers(dest="templates_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="list built-in and custom templates")
    ls.add_argument("--json", action="store_true", help="print each template's full JSON")
    ls.set_defaults(func=run_list)


def run_list(args) -> int:
    from app.core.templates import TemplateRegistry  # jinja2 loads only when needed

    registry = TemplateRegistry()
    templates = registry.all()
    if args.json:
        out = [{**t.to_dict(), "origin": t.origin} for t in templates]
        json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        width = max(len(t.id) for t in templates) + 2
        for t in templates:
            where = "built-in" if t.builtin else "custom"
            sys.stdout.write(f"{t.id:<{width}}{where:<10}{t.kind:<12}{t.name}\n")
    for problem in registry.problems:  # a broken custom file is reported, not hidden
        print(f"corral: warning: {problem}", file=sys.stderr)
    return 0
