"""`corral chat MODEL_PATH -p PROMPT`: stream a reply to stdout, the stats to stderr."""

from __future__ import annotations

import sys
from pathlib import Path

from app.cli._common import CliError

# Imported when the command runs, not when the parser is built: `corral inspect` stays fast.
BACKENDS = ("auto", "cpu", "gpu")  # app.core.hardware.BACKENDS (a test checks they agree)


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
    if args.prompt is not None:
        return args.prompt
    if sys.stdin.isatty():
        raise CliError("no prompt: give -p PROMPT or pipe the prompt on stdin")
    return sys.stdin.read()


def sampling_from_args(args, stop: tuple[str, ...] = ()):
    """The engine's defaults, overridden by whatever the user gave."""
    from app.core.engine import SamplingParams

    given = dict(max_tokens=args.max_tokens, temperature=args.temp, top_k=args.top_k,
                 top_p=args.top_p, min_p=args.min_p, repeat_penalty=args.repeat_penalty,
                 repeat_last_n=args.repeat_last_n, seed=args.seed)
    grammar = None
    if getattr(args, "grammar_file", None):
        try:
            grammar = open(args.grammar_file, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"{args.grammar_file}: cannot be read ({exc})") from None
    return SamplingParams(**{k: v for k, v in given.items() if v is not None}, grammar=grammar,
                          stop=tuple(args.stop) + tuple(s for s in stop if s not in args.stop))


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


def run_remote(args, prompt: str, remote) -> int:
    """A model on another OpenAI-compatible server: it applies its own chat template."""
    backend, model = remote
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + \
        [{"role": "user", "content": prompt}]
    try:
        stream = backend.chat(model, messages, sampling_from_args(args))
        stream_to_stdout(stream, backend.stop)
    finally:
        backend.close()
    stats = stream.stats
    print(f"corral: {stats.summary()}, remote {args.model}", file=sys.stderr)
    return 130 if stats.stop_reason == "cancelled" else 0


def run(args) -> int:
    from app.core.engine import Engine, LoadSettings
    from app.core.remote import open_remote

    prompt = read_prompt(args)
    # SERVER/MODEL of a registered server (no network call); a file that exists is always local.
    remote = None if Path(args.model).exists() else open_remote(args.model)
    if remote:
        return run_remote(args, prompt, remote)
    with Engine() as engine:
        loaded = engine.load(args.model, LoadSettings(
            backend=args.backend, gpu_layers=args.gpu_layers, threads=args.threads, n_ctx=args.ctx))
        if loaded.fallback_reason:
            print(f"corral: note: {loaded.fallback_reason}", file=sys.stderr)
        rendered, detection = render_prompt(loaded.info, prompt, args.template, args.system)
        print(f"corral: template {rendered.template_id} ({detection.rule}: {detection.detail})",
              file=sys.stderr)
        generation = engine.generate(rendered.text, sampling_from_args(args, tuple(rendered.stop)),
                                     add_bos=rendered.add_bos)
        stream_to_stdout(generation, engine.stop)
        stats = generation.stats
        print(f"corral: {stats.summary()}, seed {stats.seed}, backend {loaded.backend}",
              file=sys.stderr)
    return 130 if stats.stop_reason == "cancelled" else 0
