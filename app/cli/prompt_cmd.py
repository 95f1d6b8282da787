"""`corral prompt (MODEL_PATH | --template ID) --messages FILE.json [--system TEXT]`: the prompt
inspector. Prints the exact text that would be sent to the model on stdout (nothing added, not
even a final newline), then on stderr which template was used and why, whether the engine adds
BOS, and the stop strings (as JSON, so whitespace shows)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.cli._common import CliError, check_arg
from app.core.safetext import terminal_safe

MAX_MESSAGES_BYTES = 16 * 1024 * 1024


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
    from app.core import turns
    from app.core.library import LibraryError
    from app.core.templates import takes_any_role

    if not args.model and not args.template:
        raise CliError("give a MODEL_PATH or --template ID (see `corral templates list`)", 2)
    check_arg("--system", args.system)
    options = turns.TurnOptions(template=args.template, system=args.system,
                                add_generation_prompt=not args.no_generation_prompt)
    if args.model:
        try:
            from app.core import gguf_info  # only when a model file is asked for
        except ImportError:
            raise CliError("reading model files is not available in this build; "
                           "use --template ID") from None
        try:
            ref = turns.resolve_model(args.model, allow_remote=False)
        except LibraryError as exc:
            raise CliError(str(exc)) from None
        info = gguf_info.inspect(ref.path)
    else:
        ref, info = turns.ModelRef(args.template), None
    # The same template choice and rendering a turn makes (app.core.turns), without fitting
    # into a context: nothing is loaded, nothing is tokenized.
    choice = turns.template_for(turns.TurnRequest(ref, options=options), info=info)
    template, detection = choice.template, choice.detection
    messages = read_messages(Path(args.messages), any_role=takes_any_role(template))
    rendered = turns.render_turn(turns.TurnRequest(ref, messages=tuple(messages),
                                                   options=options), choice)
    sys.stdout.write(rendered.text)
    sys.stdout.flush()
    if sys.stdout.isatty() and sys.stderr.isatty():
        print(file=sys.stderr)  # the prompt has no final newline; keep the notes apart
    print(terminal_safe(f"# template: {template.id} ({template.name}); {detection.rule}: "
                        f"{detection.detail}"), file=sys.stderr)  # names from the model file
    print(f"# add BOS: {'yes' if rendered.add_bos else 'no (the text carries it)'}",
          file=sys.stderr)
    print(f"# stop: {json.dumps(rendered.stop, ensure_ascii=False)}", file=sys.stderr)
    for note in rendered.notes:
        print(terminal_safe(f"# note: {note}"), file=sys.stderr)  # names a model's template
    return 0


def read_messages(path: Path, any_role: bool = False) -> list[dict[str, str]]:
    """Read and check FILE.json; every problem is one line naming the file. any_role: the
    template (a model's own) decides which roles it takes. Read with bounds (a regular file of
    at most MAX_MESSAGES_BYTES: `/dev/zero` or a FIFO is refused, not read until memory ends)."""
    from app.core.inputs import bad_text
    from app.core.statefile import StateFileError, parse_file

    try:
        data = parse_file(path, max_bytes=MAX_MESSAGES_BYTES, max_depth=16, missing=FileNotFoundError)
    except StateFileError as exc:
        raise CliError(str(exc)) from None
    if data is FileNotFoundError:
        raise CliError(f"{terminal_safe(path)}: no such file")
    bad = bad_text(data)
    if bad:
        raise CliError(f"{terminal_safe(path)}: {bad[0]} {bad[1]}")
    from app.core.templates import TemplateError, parse_messages

    try:
        return parse_messages(data, any_role=any_role)
    except TemplateError as exc:
        raise CliError(f"{terminal_safe(path)}: {exc}") from None
