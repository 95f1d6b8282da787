"""`corral servers add URL | list | rm NAME`: remote OpenAI-compatible engines (app.core.remote).

Their models are named SERVER/MODEL wherever a model id is asked for."""

from __future__ import annotations

import sys

from app.cli._common import CliError
from app.core.safetext import terminal_safe


def register(sub) -> None:
    p = sub.add_parser("servers", help="remote OpenAI-compatible servers whose models you can use",
                       description="Register servers (llama.cpp, vLLM, Ollama, another Corral); "
                                   "their models are then named SERVER/MODEL.")
    cmds = p.add_subparsers(dest="servers_command", metavar="ACTION", required=True)
    add = cmds.add_parser("add", help="register a server")
    add.add_argument("url", metavar="URL", help="e.g. http://192.168.1.20:8080 (/v1 is added "
                     "when no path is given)")
    add.add_argument("--key", metavar="KEY",
                     help="its API key ('-' reads it from stdin); kept in the OS keyring, or "
                          "else in an owner-only file")
    add.add_argument("--name", metavar="N", help="default: from the address (host-port)")
    add.add_argument("--no-check", action="store_true",
                     help="add it even if it cannot be reached now")
    add.add_argument("--standard-only", action="store_true",
                     help="send only OpenAI's own sampling fields (no top_k, min_p, "
                          "repeat_penalty), for servers that refuse others")
    add.set_defaults(func=run_add)
    ls = cmds.add_parser("list", help="show the registered servers")
    ls.add_argument("--models", action="store_true", help="also ask each server for its models")
    ls.set_defaults(func=run_list)
    rm = cmds.add_parser("rm", help="forget a server (and its key)")
    rm.add_argument("name", metavar="NAME")
    rm.set_defaults(func=run_rm)


def _where(server, registry) -> str:
    if server.key_store == "keyring":
        return "key in the OS keyring"
    if server.key_store == "file":
        return f"key in {registry.keys_path} (owner-only)"
    return "no key"


def run_add(args) -> int:
    from app.core.remote import RemoteError, RemoteServer, ServerRegistry, default_name, \
        normalize_url
    from app.core.remote_client import RemoteBackend

    registry = ServerRegistry()
    key = args.key
    if key == "-":
        key = sys.stdin.readline().strip() or None
    elif key:
        print("corral: note: a key given on the command line can be read by other users of "
              "this machine (ps); `--key -` reads it from stdin", file=sys.stderr)
    try:
        url = normalize_url(args.url)
        name = args.name or default_name(url)
        count = None
        if not args.no_check:
            backend = RemoteBackend(RemoteServer(name, url), key, connect_timeout=5,
                                    read_timeout=30)
            try:
                count = len(backend.models())
            finally:
                backend.close()
        server = registry.add(url, key=key, name=name, extras=not args.standard_only)
    except RemoteError as exc:
        hint = "" if args.no_check else " (--no-check adds it anyway)"
        raise CliError(f"{exc}{hint}") from None
    models = f", {count} model{'s' * (count != 1)}" if count is not None else ""
    print(f"Added {server.name}: {server.shown_url}{models}; {_where(server, registry)}")
    password = server.shown_url != server.url
    if password:
        print("corral: note: the password in the URL is kept in servers.json (shown as ***); "
              "an API key given with `--key -` is kept in the OS keyring instead", file=sys.stderr)
    if (key or password) and url.startswith("http://") and not _local(url):
        print("corral: note: the key is sent unencrypted over http://", file=sys.stderr)
    return 0


def _local(url: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def run_list(args) -> int:
    from app.core.remote import RemoteError, ServerRegistry
    from app.core.remote_client import RemoteBackend

    registry = ServerRegistry()
    servers = registry.list()
    if not servers:
        print("No servers; add one with `corral servers add URL`.")
        return 0
    failed = 0
    for server in servers:
        print(f"{server.name}\t{server.shown_url}\t{_where(server, registry)}")
        if args.models:
            try:
                backend = RemoteBackend.for_server(server, registry, connect_timeout=5,
                                                   read_timeout=30)
                try:
                    for model in backend.models():
                        print(f"  {server.name}/{terminal_safe(model)}")
                finally:
                    backend.close()
            except RemoteError as exc:
                failed += 1
                print(f"  unavailable: {terminal_safe(exc)}")
    return 1 if failed else 0


def run_rm(args) -> int:
    from app.core.remote import RemoteError, ServerRegistry

    try:
        server = ServerRegistry().remove(args.name)
    except RemoteError as exc:
        raise CliError(str(exc)) from None
    print(f"Removed {server.name} ({server.shown_url})")
    return 0
