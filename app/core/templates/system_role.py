"""A system prompt for templates that have no place for one.

Some published templates leave a system message out (Phi-3 mini/medium, Orion-14B) or refuse it
with raise_exception (Mistral-7B-Instruct v0.2, Gemma 7B it: "System role not supported").
llama.cpp probes each template once — render a system message holding a marker, then see
whether the marker comes out — and when the system role is ignored or refused it puts the
system text at the start of the first user message, joined with "\\n" (minja's
chat-template.hpp, polyfill_system_role). Corral does the same, and says so in a note.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from app.core.templates.sandbox import ConversationRefused, render_jinja

_SYSTEM_NEEDLE = "<System Needle>"
_USER_NEEDLE = "<User Needle>"
_IGNORED = "leaves a system message out"
_CACHE_SIZE = 64
_probes: OrderedDict[str, str | None] = OrderedDict()
_lock = threading.Lock()


def _no_system_role(source: str, name: str, variables: dict[str, Any],
                    seconds: float | None) -> str | None:
    """None when the template writes a system message; else how it treats one. Probed once
    per template text. Errors that are not the template refusing the probe conversation
    (a timeout, the sandbox) propagate: the real rendering would meet them too."""
    with _lock:
        if source in _probes:
            _probes.move_to_end(source)
            return _probes[source]
    probe = {**variables, "add_generation_prompt": False,
             "messages": [{"role": "system", "content": _SYSTEM_NEEDLE},
                          {"role": "user", "content": _USER_NEEDLE}]}
    try:
        text = render_jinja(source, name, probe, seconds)
        why = None if _SYSTEM_NEEDLE in text else _IGNORED
    except ConversationRefused as exc:
        why = f"refuses a system message (\"{exc.reason}\")"
    with _lock:
        _probes[source] = why
        while len(_probes) > _CACHE_SIZE:
            _probes.popitem(last=False)
    return why


def fold_system(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], str]:
    """The conversation without its leading system message, whose text now opens the first
    user message (or, when a reply comes first, is a user message of its own)."""
    system, rest = messages[0]["content"], messages[1:]
    if rest and rest[0]["role"] == "user":
        first = dict(rest[0])
        first["content"] = system + ("\n" + first["content"] if first["content"] else "")
        return [first, *rest[1:]], "at the start of the first user message"
    return [{"role": "user", "content": system}, *rest], "first, as a user message of its own"


def render_chat(source: str, name: str, variables: dict[str, Any],
                seconds: float | None = None) -> tuple[str, list[str]]:
    """Render a chat with a Jinja template (in this process) → (text, notes for the user)."""
    messages = variables.get("messages") or []
    notes: list[str] = []
    if messages and messages[0].get("role") == "system":
        why = _no_system_role(source, name, variables, seconds)
        if why is not None:
            folded, where = fold_system(messages)
            variables = {**variables, "messages": folded}
            notes.append(f"{name} {why}, so the system prompt was put {where} "
                         f"(as llama.cpp does).")
    return render_jinja(source, name, variables, seconds), notes
