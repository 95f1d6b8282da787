"""`corral serve`: the OpenAI-compatible API on this machine (see app.core.server)."""

from __future__ import annotations

import os
import sys

from app.cli._common import CliError
from app.core.memory_plan import format_bytes
from app.core.safetext import terminal_safe

KEY_ENV = "CORRAL_API_KEY"
DEFAULT_MAX_BODY = 4 * 1024 * 1024


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve the library's models over an OpenAI-compatible API",
        description="Serve GET /v1/models, POST /v1/chat/completions and POST /v1/completions "
                    "for the models of the library (loaded on demand, one at a time).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8484, help="default: 8484; 0 picks a free port")
    p.add_argument("--model", metavar="ID", help="load this model now and use it when a "
                   "request names none (default: load on the first request)")
    p.add_argument("--api-key", metavar="KEY",
                   help=f"require 'Authorization: Bearer KEY' on every request. Other users "
                        f"of this machine can read a key given here in the process list: "
                        f"prefer ${KEY_ENV} or --api-key-file")
    p.add_argument("--api-key-file", metavar="FILE",
                   help=f"read the key from the first line of FILE (default: ${KEY_ENV} if set)")
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="let web pages from ORIGIN call the API (repeatable; default: none)")
    p.add_argument("--max-queue", type=int, default=8, metavar="N",
                   help="requests that may wait for the engine; more get 429 (default: 8)")
    # ServeConfig.max_body's value; app.core.server is not imported to draw the parser
    # (it loads the web stack), test_serve checks the two agree.
    p.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY, metavar="BYTES",
                   help=f"largest request body accepted, in bytes; larger gets 413 (default: "
                        f"{DEFAULT_MAX_BODY}, that is {format_bytes(DEFAULT_MAX_BODY)})")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="llama.cpp threads (default: the settings', else one per core)")
    p.set_defaults(func=run)


def run(args) -> int:
    from app.core.engine import EngineError
    from app.core.library import LibraryError
    from app.core.server import ServeConfig, Server
    from app.core.settings import current_settings

    if args.max_queue < 0 or args.max_body < 1 or not 0 <= args.port <= 65535:
        raise CliError("--max-queue must be ≥ 0, --max-body ≥ 1 and --port 0…65535", 2)
    api_key = _api_key(args)
    config = ServeConfig(host=args.host, port=args.port, model=args.model,
                         api_key=api_key, cors=tuple(args.cors),
                         max_queue=args.max_queue, max_body=args.max_body, threads=args.threads)
    server = Server(config, log_level="info")
    try:
        if args.model:
            print(f"corral: loading {args.model}…", file=sys.stderr, flush=True)
            loaded = server.preload(args.model)
            note = f"; note: {loaded.fallback_reason}" if loaded.fallback_reason else ""
            print(f"corral: {args.model} loaded ({loaded.backend}, context {loaded.n_ctx}){note}",
                  file=sys.stderr, flush=True)
    except (LibraryError, EngineError) as exc:
        server.stop()
        raise CliError(str(exc)) from None
    if current_settings().offline:
        print("corral: offline mode is on: only this machine's models are served, and no "
              "registered remote server is contacted", file=sys.stderr, flush=True)
    if not api_key and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"corral: warning: listening on {args.host} without --api-key: anyone who can "
              f"reach this machine can use its models", file=sys.stderr, flush=True)
    print(f"Serving the OpenAI API at {server.url} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.stop()
    return 0


def _api_key(args) -> str | None:
    """--api-key, else --api-key-file's first line, else $CORRAL_API_KEY (a key on the command
    line is visible to other users in `ps`: said once)."""
    from app.core.statefile import StateFileError, read_bytes

    if args.api_key is not None and args.api_key_file is not None:
        raise CliError("give --api-key or --api-key-file, not both", 2)
    if args.api_key is not None:
        print(f"corral: note: other users of this machine can read a key given with --api-key "
              f"in the process list; ${KEY_ENV} or --api-key-file keep it out of it",
              file=sys.stderr, flush=True)
        key = args.api_key
    elif args.api_key_file is not None:
        try:
            data = read_bytes(args.api_key_file, 64 * 1024)
        except StateFileError as exc:
            raise CliError(f"--api-key-file {terminal_safe(args.api_key_file)}: {exc}") from None
        if data is None:
            raise CliError(f"--api-key-file {terminal_safe(args.api_key_file)}: no such file")
        key = data.decode("utf-8", "replace").splitlines()[0] if data.strip() else ""
    else:
        key = os.environ.get(KEY_ENV, "")
    key = key.strip()
    if (args.api_key is not None or args.api_key_file is not None) and not key:
        raise CliError("the API key is empty", 2)
    return key or None
