"""`corral chats list | export ID FILE | import FILE`: the window's conversations, from a terminal.

The same chats database the window uses (app.core.chats); export writes what the window's
Export chat… writes (Markdown for .md, JSON for .json) and import reads a JSON export back
through app.core.chat_transfer (checked whole; a damaged file is refused in one line)."""

from __future__ import annotations

import time

from app.cli._common import CliError, check_arg
from app.core.safetext import terminal_safe


def register(sub) -> None:
    p = sub.add_parser("chats", help="list, export and import the window's conversations",
                       description="The conversations of the window: list them, export one "
                                   "(Markdown or JSON), import a JSON export back.")
    cmds = p.add_subparsers(dest="chats_command", metavar="ACTION", required=True)
    ls = cmds.add_parser("list", help="show the conversations, most recent first")
    ls.set_defaults(func=run_list)
    ex = cmds.add_parser("export", help="write one conversation to a file")
    ex.add_argument("id", metavar="ID", type=int, help="its number, as `corral chats list` shows")
    ex.add_argument("file", metavar="FILE", help="FILE.json (imports back) or FILE.md (to read)")
    ex.set_defaults(func=run_export)
    im = cmds.add_parser("import", help="add a conversation exported as JSON")
    im.add_argument("file", metavar="FILE", help="a .json file written by Export chat… or "
                                                 "`corral chats export`")
    im.set_defaults(func=run_import)


def _store():
    from app.core.chats import ChatStore, ChatStoreError

    try:
        return ChatStore()
    except ChatStoreError as exc:
        raise CliError(str(exc)) from None


def run_list(args) -> int:
    store = _store()
    try:
        conversations = store.conversations()
        if not conversations:
            print("No conversations yet.")
        for c in conversations:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(c.updated))
            model = f"\t{terminal_safe(c.model_id)}" if c.model_id else ""
            print(f"{c.id}\t{when}\t{terminal_safe(c.title)}{model}")
    finally:
        store.close()
    return 0


def run_export(args) -> int:
    from app.core.chats import ChatStoreError

    path = check_arg("FILE", args.file)
    store = _store()
    try:
        store.export_to_file(store.conversation(args.id).id, path)
    except ChatStoreError:
        raise CliError(f"there is no conversation {args.id}; `corral chats list` shows them") \
            from None
    finally:
        store.close()
    print(f"Exported conversation {args.id} to {terminal_safe(path)}")
    return 0


def run_import(args) -> int:
    from app.core.chat_transfer import ChatImportError, import_json

    path = check_arg("FILE", args.file)
    store = _store()
    try:
        conv = import_json(store, path)
        count = len(store.messages(conv.id))
    except ChatImportError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    print(f"Imported \"{terminal_safe(conv.title)}\" as conversation {conv.id} "
          f"({count} message{'s' * (count != 1)})")
    return 0
