"""Turn a conversation into the exact prompt text for one template (any of the three forms)."""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from app.core.templates.model import (GGUF_ID, PromptTemplate, RenderedPrompt, TemplateError,
                                      parse_messages)
from app.core.templates.render_worker import render_untrusted
from app.core.templates.system_role import render_chat

# End-of-turn markers of the common chat formats: when a GGUF template writes one, the model
# was trained to emit it at the end of its reply, so it is a stop string.
END_MARKERS = ("<|im_end|>", "<|eot_id|>", "</s>", "<|end|>", "<end_of_turn>")


def label(template: PromptTemplate) -> str:
    """How errors name a template."""
    return template.name if template.id == GGUF_ID else f"template {template.id!r}"


def takes_any_role(template: PromptTemplate) -> bool:
    """A Jinja template that is not one of Corral's (a model's own, a user's) decides itself
    which roles it takes (`tool`, `assistant_tool_call`…); the built-in formats know only
    system, user and assistant."""
    return template.format == "jinja" and template.origin != "builtin"


def render(template: PromptTemplate, messages: Sequence[Mapping[str, Any]], *,
           system: str | None = None, add_generation_prompt: bool = True,
           variables: Mapping[str, str] | None = None) -> RenderedPrompt:
    """Render `messages` ({"role", "content"} dicts) with `template`.

    The system prompt is, in order: `system` when given ("" means none), else a leading system
    message, else the template's default. The text carries BOS/EOS strings exactly where the
    reference format puts them; `add_bos` says whether the engine must still add a BOS token;
    `notes` say what the rendering had to change (a system prompt moved into a user message)."""
    return render_many(template, [messages], system=system,
                       add_generation_prompt=add_generation_prompt, variables=variables)[0]


def render_many(template: PromptTemplate, conversations: Sequence[Sequence[Mapping[str, Any]]],
                *, system: str | None = None, add_generation_prompt: bool = True,
                variables: Mapping[str, str] | None = None) -> list[RenderedPrompt]:
    """render() for several conversations at once: a model's own template renders them in
    the render worker in one round trip (fit_to_context tries several lengths)."""
    values = {**template.variables, **(variables or {})}
    prepared = [_prepare(template, messages, system) for messages in conversations]
    if template.format == "turns":
        texts = [(_render_turns(template, effective, body, add_generation_prompt), [])
                 for effective, _, body in prepared]
    elif template.format == "jinja":
        texts = _render_jinja(template, prepared, add_generation_prompt, values)
    elif template.format == "preset":
        texts = [(_render_preset(template, effective, body, values), [])
                 for effective, _, body in prepared]
    else:
        raise TemplateError(f"{label(template)}: unknown format {template.format!r}")
    bos = template.bos_token
    return [RenderedPrompt(text=text, stop=list(template.stop),
                           add_bos=template.add_bos and not (bos and text.startswith(bos)),
                           template_id=template.id, notes=tuple(notes))
            for text, notes in texts]


def conversation_for(template: PromptTemplate, messages: Sequence[Mapping[str, Any]]
                     ) -> list[dict[str, str]]:
    """`messages` checked for `template` (the roles it takes); TemplateError naming it."""
    try:
        return parse_messages(messages, any_role=takes_any_role(template))
    except TemplateError as exc:
        raise TemplateError(f"{label(template)}: {exc}") from None


def _prepare(template: PromptTemplate, messages: Sequence[Mapping[str, Any]],
             system: str | None) -> tuple[str, bool, list[dict[str, str]]]:
    """(the system prompt, whether it is the template's default, the other messages)."""
    conversation = conversation_for(template, messages)
    leading = conversation[0]["content"] if conversation and conversation[0]["role"] == "system" \
        else None
    body = conversation[1:] if leading is not None else conversation
    if system is not None:
        return system, False, body
    if leading is not None:
        return leading, False, body
    return template.default_system, True, body


def _render_turns(t: PromptTemplate, system: str, body: list[dict[str, str]],
                  add_generation_prompt: bool) -> str:
    f = t.turns
    if f is None:
        raise TemplateError(f"{label(t)}: the 'turns' form has no turn formats")
    # One literal replacement per part, on the format string only, so text inside a message
    # (braces, "{content}") is never interpreted.
    parts = [f.prefix]
    if system:
        parts.append(f.system.replace("{system}", system))
    for m in body:
        parts.append((f.user if m["role"] == "user" else f.assistant).replace("{content}",
                                                                            m["content"]))
    if add_generation_prompt:
        parts.append(f.generation)
    return "".join(parts)


def _render_jinja(t: PromptTemplate, prepared: list[tuple[str, bool, list[dict[str, str]]]],
                  add_generation_prompt: bool, values: dict[str, str]
                  ) -> list[tuple[str, list[str]]]:
    if not t.jinja:
        raise TemplateError(f"{label(t)}: the 'jinja' form has no template text")
    jobs = [{**values, "messages": ([{"role": "system", "content": system}] if system else [])
             + body, "add_generation_prompt": add_generation_prompt,
             "bos_token": t.bos_token, "eos_token": t.eos_token,
             "default_system": t.default_system, "system_is_default": is_default, "tools": None}
            for system, is_default, body in prepared]
    if t.origin == "builtin":  # Corral's own files: rendered here, no process round trip
        return [render_chat(t.jinja, label(t), job) for job in jobs]
    results = render_untrusted(t.jinja, label(t), jobs)
    for result in results:
        if isinstance(result, TemplateError):
            raise result
    return results  # type: ignore[return-value]


def _render_preset(t: PromptTemplate, system: str, body: list[dict[str, str]],
                   values: dict[str, str]) -> str:
    """One-shot completion: the last user message goes where >PROMPT is; earlier turns are not
    part of a one-shot prompt. >NAME placeholders take the template's variables."""
    if not t.preset:
        raise TemplateError(f"{label(t)}: the 'preset' form has no preset text")
    users = [m["content"] for m in body if m["role"] == "user"]
    if not users:
        raise TemplateError(f"{label(t)}: a one-shot preset needs a user message")
    fill = {**values, "PROMPT": users[-1]}
    pattern = re.compile(">(" + "|".join(re.escape(k) for k in sorted(fill, key=len,
                                                                      reverse=True)) + ")")
    # One pass over the preset text: a message that itself contains ">LANGUAGE" stays as typed.
    text = pattern.sub(lambda m: fill[m.group(1)], t.preset)
    return (system + "\n\n" + text) if system else text


def gguf_template(chat_template: str, *, bos_token: str | None, eos_token: str | None,
                  model_name: str | None = None) -> PromptTemplate:
    """The template a model file carries (tokenizer.chat_template), as a PromptTemplate."""
    stop = [eos_token] if eos_token else []
    stop += [m for m in END_MARKERS if m in chat_template and m not in stop]
    who = f"{model_name}'s own chat template" if model_name else "the model's own chat template"
    return PromptTemplate(
        id=GGUF_ID, name=who, format="jinja", kind="chat", jinja=chat_template,
        description="tokenizer.chat_template from the GGUF file", stop=tuple(stop),
        add_bos=True, bos_token=bos_token or "", eos_token=eos_token or "", origin="gguf")


def validate(template: PromptTemplate) -> RenderedPrompt:
    """Render a sample conversation; TemplateError if the template cannot render it.
    Custom templates pass this before they are saved."""
    if template.format == "turns" and template.turns is not None:
        f = template.turns
        for part, placeholder in (("user", "{content}"), ("assistant", "{content}")):
            if placeholder not in getattr(f, part):
                raise TemplateError(f"{label(template)}: the {part} turn must contain "
                                    f"{placeholder}, or the message would be lost")
        if f.system and "{system}" not in f.system:
            raise TemplateError(f"{label(template)}: the system part must contain {{system}}")
    if template.format == "preset" and ">PROMPT" not in (template.preset or ""):
        raise TemplateError(f"{label(template)}: a preset must contain >PROMPT")
    return render(template, SAMPLE_CONVERSATION, system="You are a helpful assistant.")


SAMPLE_CONVERSATION = (
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi! How can I help?"},
    {"role": "user", "content": "Name three colours."},
)
