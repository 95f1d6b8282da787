"""A conversation exported as JSON comes back in: `import_json(store, path)`.

The file is what `ChatStore.export_json` writes (`"format": "corral-conversation"`, version 1):
the conversation's fields and its messages. It is read as hostile input through the one bounded
JSON reader (`statefile.parse_file`: a size and depth limit, any bytes, a FIFO in its place),
then checked whole — every field's kind, each role, state and sampling value, every string
valid text — and refused whole with one `ChatImportError` naming the file and what is wrong:
nothing of a damaged file is imported, and the file itself is never changed.

An import is a new conversation (a new id, dated now; the file's ids and dates are not reused,
so importing the same file twice gives two chats and never touches an existing one). Its
messages keep their order, text, state and stats; a reply the file says was still streaming
comes back as interrupted. If saving fails half-way the partial conversation is removed.
No Qt here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.chats import MODES, ROLES, STATES, ChatStore, Conversation
from app.core.inputs import bad_text
from app.core.safetext import terminal_safe
from app.core.sampling import LIMITS, SamplingError, check_stops, check_value
from app.core.statefile import Damaged, StateFileError, expect, parse_file

FORMAT = "corral-conversation"
VERSION = 1
MAX_BYTES = 64 * 1024 * 1024   # a long chat of pasted files; far above any real one
MAX_TITLE = 500


class ChatImportError(Exception):
    """A chat file that cannot be imported: "PATH: what is wrong; nothing was imported"."""


@dataclass(frozen=True)
class ChatFile:
    """A checked export: the conversation's fields and its messages (role, content, state,
    stats), ready to be saved."""

    fields: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)


def read_export(path: str | os.PathLike) -> ChatFile:
    """The checked content of the export at `path`; ChatImportError otherwise."""
    try:
        data = parse_file(path, max_bytes=MAX_BYTES, missing=_Missing)
    except Damaged as exc:  # "PATH: is not valid JSON (…)"
        raise ChatImportError(f"{exc}; nothing was imported") from None
    except StateFileError as exc:  # cannot be read (permissions, an I/O error)
        raise ChatImportError(str(exc)) from None
    if data is _Missing:
        raise ChatImportError(f"{_shown(path)}: there is no such file")
    try:
        return check_export(data)
    except Damaged as exc:
        raise ChatImportError(f"{_shown(path)}: {exc}; nothing was imported") from None


def import_json(store: ChatStore, path: str | os.PathLike) -> Conversation:
    """Import the conversation exported to `path` into `store`; the new conversation."""
    chat = read_export(path)
    conv = store.create_conversation(**chat.fields)
    try:
        for m in chat.messages:
            store.add_message(conv.id, m["role"], m["content"], state=m["state"], stats=m["stats"])
        # add_message retitles a "New chat" after its first user message: keep the file's title.
        return store.update_conversation(conv.id, title=chat.fields["title"])
    except BaseException:
        store.delete_conversation(conv.id)  # never half a conversation
        raise


# --------------------------------------------------------------------------- the checks

class _Missing:
    pass


def _shown(path: str | os.PathLike) -> str:
    return terminal_safe(str(Path(path)))


def check_export(data: Any) -> ChatFile:
    """`data` (parsed JSON) as a ChatFile; Damaged with the reason when it is not an export
    this Corral can import."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise Damaged("is not a Corral chat export (it has no \"format\": "
                      f"\"{FORMAT}\"; export one with Export chat… or `corral chats export`)")
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise Damaged("has no valid \"version\"")
    if version > VERSION:
        raise Damaged(f"was written by a newer Corral (format version {version}; this one "
                      f"reads {VERSION}); update Corral to import it")
    where = bad_text(data)
    if where:
        raise Damaged(f"{where[0]} {where[1]}")
    title = " ".join(expect(data.get("title", ""), str, "title").split())[:MAX_TITLE]
    fields: dict[str, Any] = {"title": title or "Imported chat"}
    for key in ("model_id", "model_path", "template_id", "system_prompt"):
        value = data.get(key)
        fields[key] = None if value is None else expect(value, str, key)
    mode = data.get("mode", "chat")
    if mode not in MODES:
        raise Damaged(f"mode must be one of {', '.join(MODES)}, not {_short(mode)}")
    fields["mode"] = mode
    fields["params"] = _params(expect(data.get("params", {}), dict, "params"))
    fields["options"] = _options(expect(data.get("options", {}), dict, "options"))
    messages = expect(data.get("messages", []), list, "messages")
    return ChatFile(fields, [_message(m, i) for i, m in enumerate(messages, 1)])


def _message(entry: Any, number: int) -> dict[str, Any]:
    what = f"message {number}"
    expect(entry, dict, what)
    role, state = entry.get("role"), entry.get("state", "complete")
    if role not in ROLES:
        raise Damaged(f"{what}: role must be one of {', '.join(ROLES)}, not {_short(role)}")
    if state not in STATES:
        raise Damaged(f"{what}: state must be one of {', '.join(STATES)}, not {_short(state)}")
    content = expect(entry.get("content"), str, f"{what}: content")
    stats = expect(entry.get("stats", {}), dict, f"{what}: stats")
    for key, value in stats.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise Damaged(f"{what}: stats {key} must be a finite number, not {value}")
    return {"role": role, "content": content,
            "state": "interrupted" if state == "streaming" else state, "stats": stats}


def _params(params: dict[str, Any]) -> dict[str, Any]:
    """The sampling values, each checked with the engine's own bounds (a NaN temperature is
    refused here, not at the first reply)."""
    for key, value in params.items():
        try:
            if key in LIMITS and not (key == "seed" and value is None):
                check_value(key, value)
            elif key == "stop":
                check_stops(value)
        except SamplingError as exc:
            raise Damaged(f"params: {exc}") from None
    return params


def _options(options: dict[str, Any]) -> dict[str, Any]:
    stop = options.get("stop")
    if stop is not None:
        try:
            check_stops(stop)
        except SamplingError as exc:
            raise Damaged(f"options: {exc}") from None
    override = options.get("prompt_override")
    if override is not None:
        expect(override, str, "options: prompt_override")
    return options


def _short(value: Any) -> str:
    return terminal_safe(repr(value))[:60]
