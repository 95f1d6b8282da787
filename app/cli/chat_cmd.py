"""`corral chat MODEL -p PROMPT [--messages FILE.json]`: stream a reply to stdout, the stats to
stderr. The turn goes through the core's turn pipeline (app.core.turns), as the window's and
`corral serve`'s do: the same model, conversation and settings give the same prompt."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from app.cli._common import CliError, check_arg
from app.core.safetext import terminal_safe

# Imported when the command runs, not when the parser is built: `corral inspect` stays fast.
BACKENDS = ("auto", "cpu", "gpu")  # app.core.hardware.BACKENDS (a test checks they agree)
MAX_PROMPT_BYTES = 16 * 1024 * 1024  # a prompt piped on stdin
# SamplingParams field -> the option that sets it, to name it in a message
FLAGS = {"max_tokens": "--max-tokens", "temperature": "--temp", "top_k": "--top-k",
         "top_p": "--top-p", "min_p": "--min-p", "repeat_penalty": "--repeat-penalty",
         "repeat_last_n": "--repeat-last-n", "seed": "--seed", "stop": "--stop",
         "grammar": "--grammar-file"}


def register(sub) -> None:
    p = sub.add_parser("chat", help="stream a reply from a model",
                       description="Stream a reply from MODEL to stdout; stats go to stderr.")
    p.add_argument("model", metavar="MODEL",
                   help="a .gguf file, a library model id, or SERVER/MODEL on a server added "
                        "with `corral servers add`")
    p.add_argument("-p", "--prompt", help="your message (default: read from stdin)")
    p.add_argument("--messages", metavar="FILE.json",
                   help='the conversation so far: a JSON list of {"role", "content"}; the reply '
                        'continues it (then -p\'s message, when given)')
    p.add_argument("--template", metavar="ID",
                   help="prompt template (default: the model's: your choice for it in the "
                        "library, else detected; see `corral templates list`; 'llama' sends "
                        "the prompt as is)")
    p.add_argument("--system", metavar="TEXT",
                   help="system prompt (default: the template's; '' for none)")
    p.add_argument("--save-prompt", metavar="FILE",
                   help="write the exact text sent to the model to FILE (UTF-8, nothing added)")
    p.add_argument("--max-tokens", type=int, metavar="N")
    p.add_argument("--temp", type=float, metavar="T")
    p.add_argument("--top-k", type=int, metavar="K")
    p.add_argument("--top-p", type=float, metavar="P")
    p.add_argument("--min-p", type=float, metavar="P")
    p.add_argument("--repeat-penalty", type=float, metavar="R")
    p.add_argument("--repeat-last-n", type=int, metavar="N")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="default: random (printed)")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="stop when TEXT is generated (repeatable)")
    p.add_argument("--grammar-file", metavar="FILE.gbnf",
                   help="constrain the reply to a GBNF grammar (llama.cpp's format), e.g. for JSON")
    p.add_argument("--threads", type=int, default=None, metavar="N")
    p.add_argument("--ctx", type=int, default=None, metavar="N", help="context size in tokens")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="auto, cpu or gpu (default: the settings', auto)")
    p.add_argument("--gpu-layers", type=int, default=None, metavar="N",
                   help="layers to offload to the GPU (default: all, when on the GPU)")
    p.set_defaults(func=run)


def read_prompt(args) -> str | None:
    """-p's text, or stdin's (at most MAX_PROMPT_BYTES of UTF-8); with --messages, none is
    needed (the conversation's last message is answered); else one line saying so."""
    if args.prompt is not None:
        return check_arg("-p", args.prompt)
    if sys.stdin.isatty():
        if args.messages:
            return None
        raise CliError("no prompt: give -p PROMPT or pipe the prompt on stdin")
    data = sys.stdin.buffer.read(MAX_PROMPT_BYTES + 1)
    if len(data) > MAX_PROMPT_BYTES:
        from app.core.memory_plan import format_bytes
        raise CliError(f"stdin: the prompt is larger than {format_bytes(MAX_PROMPT_BYTES)}")
    return _utf8(data, "stdin: the prompt")


def read_grammar(path: str) -> str:
    """A GBNF file: regular, at most MAX_GRAMMAR_BYTES, UTF-8 (else one line naming it)."""
    from app.core.sampling import MAX_GRAMMAR_BYTES
    from app.core.statefile import StateFileError, read_bytes

    try:
        data = read_bytes(path, MAX_GRAMMAR_BYTES)
    except StateFileError as exc:  # Damaged says what it is: a FIFO, a device, too large
        raise CliError(f"--grammar-file {terminal_safe(path)}: {exc}") from None
    if data is None:
        raise CliError(f"--grammar-file {terminal_safe(path)}: no such file")
    return _utf8(data, f"--grammar-file {terminal_safe(path)}:")


def _utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                       f"{exc.start})") from None


def overrides_from_args(args) -> dict:
    """The knobs the user gave (the turn pipeline puts them over the app's and the model's
    settings), checked before anything is loaded: a value it refuses is named by its option."""
    from app.core.sampling import SamplingError
    from app.core.turns import check_overrides

    for text in args.stop:
        check_arg("--stop", text)
    grammar = read_grammar(args.grammar_file) if getattr(args, "grammar_file", None) else None
    given = dict(max_tokens=args.max_tokens, temperature=args.temp, top_k=args.top_k,
                 top_p=args.top_p, min_p=args.min_p, repeat_penalty=args.repeat_penalty,
                 repeat_last_n=args.repeat_last_n, seed=args.seed, grammar=grammar,
                 stop=tuple(args.stop) or None, context=args.ctx, threads=args.threads,
                 backend=args.backend, gpu_layers=args.gpu_layers)
    try:
        check_overrides(given)
    except SamplingError as exc:
        raise CliError(f"{FLAGS.get(exc.field, exc.field)}: {exc.problem}", 2) from None
    return given


def _terminal(args):
    """The turn pipeline's listener for a terminal: the reply on stdout as it comes, notes on
    stderr (names from model files made terminal-safe)."""
    from app.core.turns import TurnListener

    class Terminal(TurnListener):
        backend_note = ""

        def loaded(self, model) -> None:
            self.backend_note = f"backend {model.backend}"
            if model.fallback_reason:
                print(f"corral: note: {model.fallback_reason}", file=sys.stderr)

        def prepared(self, turn) -> None:
            if turn.template is not None:
                d = turn.template.detection
                print(terminal_safe(f"corral: template {turn.template_id} ({d.rule}: "
                                    f"{d.detail})"), file=sys.stderr)
            for note in turn.notes:
                print(terminal_safe(f"corral: note: {note}"), file=sys.stderr)
            if turn.dropped_turns:
                print(f"corral: note: the conversation is longer than the context "
                      f"({turn.n_ctx} tokens): its {turn.dropped_turns} oldest exchange(s) "
                      f"were left out", file=sys.stderr)
            if args.save_prompt and turn.text is not None:
                _save(args.save_prompt, turn.text)

        def pieces(self, text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

    return Terminal()


def _save(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as exc:
        raise CliError(f"--save-prompt {terminal_safe(path)}: "
                       f"{exc.strerror or exc}") from None


def read_conversation(args, prompt: str | None) -> list[dict]:
    messages: list[dict] = []
    if args.messages:
        from app.cli.prompt_cmd import read_messages
        messages = read_messages(Path(args.messages), any_role=True)
    if prompt is not None:
        messages.append({"role": "user", "content": prompt})
    return messages


def run(args) -> int:
    from app.core import turns
    from app.core.library import LibraryError

    # Every option is checked before anything is loaded or sent.
    prompt = read_prompt(args)
    check_arg("--system", args.system)
    overrides = overrides_from_args(args)
    messages = read_conversation(args, prompt)
    # A file that exists is always local; else SERVER/MODEL of a registered server (no network
    # call), a library id, or a path the engine says is missing.
    try:
        ref = turns.resolve_model(args.model)
    except LibraryError as exc:
        raise CliError(str(exc)) from None
    request = turns.TurnRequest(ref, messages=tuple(messages), options=turns.TurnOptions(
        template=args.template, system=args.system, overrides=overrides))
    terminal = _terminal(args)
    backend = turns.open_backend(ref)
    try:
        turn = turns.Turn(backend, request, listener=terminal)
        with _first_ctrl_c_stops(turn):
            result = turn.run()
    finally:
        backend.close()
    sys.stdout.write("\n")
    sys.stdout.flush()
    where = f"remote {terminal_safe(ref.id)}" if ref.remote else terminal.backend_note
    line = turns.describe_stats(result.saved_stats(), result.state, detail=True)
    print(f"corral: {line}" + (f" · {where}" if where else ""), file=sys.stderr)
    return 130 if result.stopped_by == turns.USER else 0


class _first_ctrl_c_stops:
    """Ctrl+C stops the reply and keeps what was printed; a second one ends the command."""

    def __init__(self, turn) -> None:
        self.turn = turn
        self.previous = None

    def _stop(self, *_):
        signal.signal(signal.SIGINT, self.previous)
        self.turn.stop()

    def __enter__(self):
        self.previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._stop)
        except ValueError:  # not the main thread (a test): Ctrl+C is not ours to catch
            self.previous = None
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
