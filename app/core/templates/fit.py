"""Fit a conversation into the model's context by dropping its oldest turns.

A turn is a user message with the replies that follow it. The system prompt is never dropped
(it defines the assistant), nor is the last turn (it holds the question being answered).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

from app.core.templates.model import PromptTemplate, RenderedPrompt, TemplateError, \
    parse_messages
from app.core.templates.render import label, render, takes_any_role


def _turns(body: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    turns: list[list[dict[str, str]]] = []
    for m in body:
        if m["role"] == "user" or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    return turns


def fit_to_context(template: PromptTemplate, messages: Sequence[Mapping[str, Any]], n_ctx: int,
                   count_tokens: Callable[[str], int], reserve: int, *,
                   system: str | None = None, add_generation_prompt: bool = True,
                   variables: Mapping[str, str] | None = None) -> RenderedPrompt:
    """Render the most recent part of the conversation that fits: prompt tokens + `reserve`
    (room for the reply) <= n_ctx. `count_tokens` counts a text's tokens; one more is counted
    when the engine will add a BOS. RenderedPrompt.dropped_turns tells the UI what was cut."""
    try:
        conversation = parse_messages(messages, any_role=takes_any_role(template))
    except TemplateError as exc:
        raise TemplateError(f"{label(template)}: {exc}") from None
    head = conversation[:1] if conversation and conversation[0]["role"] == "system" else []
    turns = _turns(conversation[len(head):])

    def attempt(dropped: int) -> tuple[RenderedPrompt, int]:
        kept = head + [m for turn in turns[dropped:] for m in turn]
        rendered = render(template, kept, system=system,
                          add_generation_prompt=add_generation_prompt, variables=variables)
        return rendered, count_tokens(rendered.text) + (1 if rendered.add_bos else 0)

    budget = n_ctx - reserve
    rendered, used = attempt(0)
    if used <= budget:
        return rendered
    # Fewer turns never make the prompt longer, so the least number to drop is found by
    # bisection: a handful of renders and token counts even for a long chat.
    low, high = 1, max(len(turns) - 1, 0)  # keep at least the last turn
    rendered, used = attempt(high)
    if used > budget:
        raise TemplateError(
            f"{label(template)}: the last message alone needs {used} tokens and {reserve} are "
            f"kept for the reply, but the context holds {n_ctx}; shorten the message or the "
            f"system prompt, or load the model with a larger context")
    best = (high, rendered)
    while low < high:
        mid = (low + high) // 2
        candidate, used = attempt(mid)
        if used <= budget:
            best, high = (mid, candidate), mid
        else:
            low = mid + 1
    dropped, rendered = best
    return replace(rendered, dropped_turns=dropped)
