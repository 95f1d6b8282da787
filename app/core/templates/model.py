"""The data of prompt templates: what a template is, what rendering returns, and the one error.

A template is data (a JSON file), never Python code. It has one of three forms:

- ``turns``: a declarative format, one string per part ("{system}" / "{content}" placeholders),
  enough for the formats that simply write each message in a fixed frame (Vicuna, ChatML, …);
- ``jinja``: a Jinja template rendered in the same sandbox as a GGUF file's own template, for
  formats a frame cannot express (Llama 2 folds the system prompt into the first user turn);
- ``preset``: a one-shot completion text with ``>PROMPT`` (and ``>NAME`` variables) in it, as
  Dalai's prompt presets are; only the last user message goes in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

ROLES = ("system", "user", "assistant")
FORMATS = ("turns", "jinja", "preset")
KINDS = ("chat", "completion")
ORIGINS = ("builtin", "user", "gguf")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
GGUF_ID = "gguf"  # the id a model's own template is known by; no file may take it


class TemplateError(Exception):
    """A template or a conversation that cannot be rendered; the message names the template."""


@dataclass(frozen=True)
class TurnFormat:
    """How the ``turns`` form writes each part. Placeholders are replaced once, literally
    (no str.format: a message may contain braces)."""

    system: str = "{system}"
    user: str = "{content}"
    assistant: str = "{content}"
    generation: str = ""
    prefix: str = ""  # written first, always (e.g. a fixed preamble)


@dataclass(frozen=True)
class PromptTemplate:
    id: str
    name: str
    format: str
    kind: str = "chat"
    description: str = ""
    default_system: str = ""
    turns: TurnFormat | None = None
    jinja: str | None = None
    preset: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    stop: tuple[str, ...] = ()
    add_bos: bool = True  # the engine adds the model's BOS unless the text already starts with it
    bos_token: str = "<s>"
    eos_token: str = "</s>"
    source_url: str = ""
    source_where: str = ""
    notes: str = ""
    origin: str = "user"

    @property
    def builtin(self) -> bool:
        return self.origin == "builtin"

    def with_tokens(self, bos_token: str | None, eos_token: str | None) -> "PromptTemplate":
        """The same template rendered with a model's own BOS/EOS strings (when it has them)."""
        return replace(self, bos_token=bos_token or self.bos_token,
                       eos_token=eos_token or self.eos_token)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form saved in a template file (origin is where the file is, not in it)."""
        out: dict[str, Any] = {"id": self.id, "name": self.name, "kind": self.kind,
                               "description": self.description, "format": self.format,
                               "default_system": self.default_system}
        if self.format == "turns" and self.turns is not None:
            t = self.turns
            out["turns"] = {"prefix": t.prefix, "system": t.system, "user": t.user,
                            "assistant": t.assistant, "generation": t.generation}
        elif self.format == "jinja":
            out["jinja"] = self.jinja
        elif self.format == "preset":
            out["preset"] = self.preset
        out.update({"variables": dict(self.variables), "stop": list(self.stop),
                    "add_bos": self.add_bos, "bos_token": self.bos_token,
                    "eos_token": self.eos_token,
                    "source": {"url": self.source_url, "where": self.source_where,
                               "notes": self.notes}})
        return out


@dataclass(frozen=True)
class RenderedPrompt:
    """What goes to the engine: the exact text, where to stop, and whether to add BOS."""

    text: str
    stop: list[str]
    add_bos: bool
    template_id: str
    dropped_turns: int = 0
    notes: tuple[str, ...] = ()  # what the rendering changed, for the user (e.g. the system
    #                              prompt moved into the first user message)


def template_from_dict(data: Any, *, origin: str, where: str) -> PromptTemplate:
    """Build a template from its JSON form; `where` (a file name) goes into every error."""
    if not isinstance(data, dict):
        raise TemplateError(f"{where}: a template file holds one JSON object")

    def text(key: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if value is None:
            raise TemplateError(f"{where}: missing {key!r}")
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return "".join(value)  # long strings may be split into a list of lines in the file
        if not isinstance(value, str):
            raise TemplateError(f"{where}: {key!r} must be text")
        return value

    tid = text("id")
    if not ID_PATTERN.match(tid) or tid == GGUF_ID:
        raise TemplateError(f"{where}: id {tid!r} must be lowercase letters, digits, '.', '_' "
                            f"or '-' (at most 63) and not {GGUF_ID!r}")
    fmt = text("format")
    if fmt not in FORMATS:
        raise TemplateError(f"{where}: format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    kind = text("kind", "chat")
    if kind not in KINDS:
        raise TemplateError(f"{where}: kind must be 'chat' or 'completion', not {kind!r}")
    turns = None
    if fmt == "turns":
        raw = data.get("turns")
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise TemplateError(f"{where}: 'turns' must be an object of strings")
        unknown = set(raw) - {"prefix", "system", "user", "assistant", "generation"}
        if unknown:
            raise TemplateError(f"{where}: unknown turn part(s) {sorted(unknown)}")
        turns = TurnFormat(**raw)
    variables = data.get("variables", {})
    if not isinstance(variables, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in variables.items()):
        raise TemplateError(f"{where}: 'variables' must map names to text")
    stop = data.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise TemplateError(f"{where}: 'stop' must be a list of non-empty strings")
    add_bos = data.get("add_bos", True)
    if not isinstance(add_bos, bool):
        raise TemplateError(f"{where}: 'add_bos' must be true or false")
    source = data.get("source", {})
    if not isinstance(source, dict):
        raise TemplateError(f"{where}: 'source' must be an object")
    return PromptTemplate(
        id=tid, name=text("name"), format=fmt, kind=kind,
        description=text("description", ""), default_system=text("default_system", ""),
        turns=turns,
        jinja=text("jinja") if fmt == "jinja" else None,
        preset=text("preset") if fmt == "preset" else None,
        variables=dict(variables), stop=tuple(stop), add_bos=add_bos,
        bos_token=text("bos_token", "<s>"), eos_token=text("eos_token", "</s>"),
        source_url=str(source.get("url", "")), source_where=str(source.get("where", "")),
        notes=str(source.get("notes", "")), origin=origin,
    )


def parse_messages(data: Any, *, any_role: bool = False) -> list[dict[str, str]]:
    """Check a conversation: a list of {"role", "content"} objects (a user message may also
    carry "input", Alpaca's second field). Returns plain dicts; raises TemplateError.
    any_role: roles other than system/user/assistant (a model's own template may know
    `tool` or `assistant_tool_call`) pass, for the template itself to accept or refuse."""
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        raise TemplateError("a conversation is a list of {\"role\", \"content\"} objects")
    out: list[dict[str, str]] = []
    for i, item in enumerate(data, start=1):
        if not isinstance(item, Mapping):
            raise TemplateError(f"message {i} is not an object with \"role\" and \"content\"")
        role, content = item.get("role"), item.get("content")
        if role not in ROLES and not (any_role and isinstance(role, str) and role.strip()):
            raise TemplateError(f"message {i} has role {role!r}; use system, user or assistant"
                                + ("" if any_role else "; this template knows no other"))
        if not isinstance(content, str):
            raise TemplateError(f"message {i} has no text \"content\"")
        extra = set(item) - {"role", "content", "input"}
        if extra:
            raise TemplateError(f"message {i} has unknown field(s) {sorted(extra)}")
        message = {"role": role, "content": content}
        if "input" in item:
            if role != "user" or not isinstance(item["input"], str):
                raise TemplateError(f"message {i}: \"input\" is text, and only on a user message")
            message["input"] = item["input"]
        if role == "system" and out:
            raise TemplateError(f"message {i}: a system message can only come first")
        out.append(message)
    return out
