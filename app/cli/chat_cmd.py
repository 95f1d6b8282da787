"""`corral chat MODEL_PATH -p PROMPT`: stream a reply to stdout, the stats to stderr."""

from __future__ import annotations

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
                       description="Stream a reply from MODEL_PATH to stdout; stats go to stderr.")
    p.add_argument("model", metavar="MODEL_PATH",
                   help="a .gguf file, or SERVER/MODEL on a server added with `corral servers add`")
    p.add_argument("-p", "--prompt", help="your message (default: read from stdin)")
    p.add_argument("--template", metavar="ID",
                   help="prompt template (default: detected from the model; "
                        "see `corral templates list`; 'llama' sends the prompt as is)")
    p.add_argument("--system", metavar="TEXT",
                   help="system prompt (default: the template's; '' for none)")
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
    p.add_argument("--backend", choices=BACKENDS, default="auto")
    p.add_argument("--gpu-layers", type=int, default=None, metavar="N",
                   help="layers to offload to the GPU (default: all, when on the GPU)")
    p.set_defaults(func=run)


def read_prompt(args) -> str:
    """-p's text, or stdin's (at most MAX_PROMPT_BYTES of UTF-8); one line if it is neither."""
    if args.prompt is not None:
        return check_arg("-p", args.prompt)
    if sys.stdin.isatty():
        raise CliError("no prompt: give -p PROMPT or pipe the prompt on stdin")
    data = sys.stdin.buffer.read(MAX_PROMPT_BYTES + 1)
    if len(data) > MAX_PROMPT_BYTES:
        raise CliError(f"stdin: the prompt is larger than {MAX_PROMPT_BYTES // (1 << 20)} MiB")
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


def sampling(base=None, **changes):
    """SamplingParams(**changes), or `base` with `changes`; a value it refuses is named by its
    option, in one line."""
    from dataclasses import replace

    from app.core.engine import SamplingError, SamplingParams

    try:
        return replace(base, **changes) if base is not None else SamplingParams(**changes)
    except SamplingError as exc:
        raise CliError(f"{FLAGS.get(exc.field, exc.field)}: {exc.problem}", 2) from None


def sampling_from_args(args):
    """The engine's defaults, overridden by whatever the user gave."""
    given = dict(max_tokens=args.max_tokens, temperature=args.temp, top_k=args.top_k,
                 top_p=args.top_p, min_p=args.min_p, repeat_penalty=args.repeat_penalty,
                 repeat_last_n=args.repeat_last_n, seed=args.seed)
    for text in args.stop:
        check_arg("--stop", text)
    grammar = read_grammar(args.grammar_file) if getattr(args, "grammar_file", None) else None
    return sampling(**{k: v for k, v in given.items() if v is not None}, grammar=grammar,
                    stop=tuple(args.stop))


def render_prompt(info, text: str, template_id: str | None, system: str | None):
    """The user's message as the model was trained to read it, and the rule that chose the format."""
    from app.core.templates import render, template_for_model

    template, detection = template_for_model(info, user_choice=template_id)
    rendered = render(template, [{"role": "user", "content": text}], system=system)
    return rendered, detection


def stream_to_stdout(generation, stop) -> None:
    """Print pieces as they come; Ctrl+C stops the generation and keeps what was printed."""
    try:
        for piece in generation:
            sys.stdout.write(piece)
            sys.stdout.flush()
    except KeyboardInterrupt:
        stop()
        for _ in generation:
            pass
    sys.stdout.write("\n")
    sys.stdout.flush()


def run_remote(args, prompt: str, params, remote) -> int:
    """A model on another OpenAI-compatible server: it applies its own chat template."""
    backend, model = remote
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
        [{"role": "user", "content": prompt}]
    try:
        stream = backend.chat(model, messages, params)
        stream_to_stdout(stream, backend.stop)
    finally:
        backend.close()
    stats = stream.stats
    print(f"corral: {stats.summary()}, remote {terminal_safe(args.model)}", file=sys.stderr)
    return 130 if stats.stop_reason == "cancelled" else 0


def run(args) -> int:
    from app.core.engine import Engine, LoadSettings
    from app.core.remote_client import open_remote

    # Every option is checked before anything is loaded or sent.
    prompt = read_prompt(args)
    check_arg("--system", args.system)
    params = sampling_from_args(args)
    # SERVER/MODEL of a registered server (no network call); a file that exists is always local.
    remote = None if Path(args.model).exists() else open_remote(args.model)
    if remote:
        return run_remote(args, prompt, params, remote)
    with Engine() as engine:
        loaded = engine.load(args.model, LoadSettings(
            backend=args.backend, gpu_layers=args.gpu_layers, threads=args.threads, n_ctx=args.ctx))
        if loaded.fallback_reason:
            print(f"corral: note: {loaded.fallback_reason}", file=sys.stderr)
        rendered, detection = render_prompt(loaded.info, prompt, args.template, args.system)
        print(terminal_safe(f"corral: template {rendered.template_id} ({detection.rule}: "
                            f"{detection.detail})"), file=sys.stderr)  # names from the file
        stop = params.stop + tuple(s for s in rendered.stop if s not in params.stop)
        generation = engine.generate(rendered.text, sampling(params, stop=stop),
                                     add_bos=rendered.add_bos)
        stream_to_stdout(generation, engine.stop)
        stats = generation.stats
        print(f"corral: {stats.summary()}, seed {stats.seed}, backend {loaded.backend}",
              file=sys.stderr)
    return 130 if stats.stop_reason == "cancelled" else 0
