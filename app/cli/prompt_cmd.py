"""`corral prompt (MODEL_PATH | --template ID) --messages FILE.json [--system TEXT]`: the prompt
inspector. Prints the exact text that would be sent to the model on stdout (nothing added, not
even a final newline), then on stderr which template was used and why, whether the engine adds
BOS, and the stop strings (as JSON, so whitespace shows)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.cli._common import CliError


def register(sub) -> None:
    p = sub.add_parser("prompt", help="show the exact prompt a conversation becomes",
                       description="Render a conversation with a model's template (detected "
                                   "from the file) or a named template, and print it.")
    p.add_argument("model", nargs="?", metavar="MODEL_PATH",
                   help="a .gguf file: its template is detected (see `corral templates list`)")
    p.add_argument("--template", metavar="ID", help="use this template (overrides detection)")
    p.add_argument("--messages", metavar="FILE.json", required=True,
                   help='a JSON list of {"role": "system"|"user"|"assistant", "content": "..."}')
    p.add_argument("--system", metavar="TEXT",
                   help="the system prompt (default: the conversation's or the template's; "
                        "'' for none)")
    p.add_argument("--no-generation-prompt", action="store_true",
                   help="do not end with the assistant's opening (to inspect a finished chat)")
    p.set_defaults(func=run)


def run(args) -> int:
    # Imported here, not at the top: every `corral` command builds this parser, and jinja2 is slow
    # to import.
    from app.core.templates import (Detection, TemplateRegistry, render, takes_any_role,
                                    template_for_model)

    if not args.model and not args.template:
        raise CliError("give a MODEL_PATH or --template ID (see `corral templates list`)", 2)
    if args.model:
        try:
            from app.core.gguf_info import inspect  # only when a model file is asked for
        except ImportError:
            raise CliError("reading model files is not available in this build; "
                           "use --template ID") from None
        info = inspect(args.model)
        template, detection = template_for_model(info, user_choice=args.template)
    else:
        template = TemplateRegistry().get(args.template)
        detection = Detection(template.id, "user", "chosen with --template")
    messages = read_messages(Path(args.messages), any_role=takes_any_role(template))
    rendered = render(template, messages, system=args.system,
                      add_generation_prompt=not args.no_generation_prompt)
    sys.stdout.write(rendered.text)
    sys.stdout.flush()
    if sys.stdout.isatty() and sys.stderr.isatty():
        print(file=sys.stderr)  # the prompt has no final newline; keep the notes apart
    print(f"# template: {template.id} ({template.name}); {detection.rule}: {detection.detail}",
          file=sys.stderr)
    print(f"# add BOS: {'yes' if rendered.add_bos else 'no (the text carries it)'}",
          file=sys.stderr)
    print(f"# stop: {json.dumps(rendered.stop, ensure_ascii=False)}", file=sys.stderr)
    for note in rendered.notes:
        print(f"# note: {note}", file=sys.stderr)
    return 0


def read_messages(path: Path, any_role: bool = False) -> list[dict[str, str]]:
    """Read and check FILE.json; every problem is one line naming the file. any_role: the
    template (a model's own) decides which roles it takes."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{path}: cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                       f"{exc.msg})") from None
    from app.core.templates import TemplateError, parse_messages

    try:
        return parse_messages(data, any_role=any_role)
    except TemplateError as exc:
        raise CliError(f"{path}: {exc}") from None
