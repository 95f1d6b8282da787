"""Fit a conversation into the model's context by dropping its oldest turns.

A turn is a user message with the replies that follow it. The system prompt is never dropped
(it defines the assistant), nor is the last turn (it holds the question being answered).

Tokenizing is the costly step (the runner's tokenizer cannot be interrupted), so it is bounded
by the context, not by the conversation: no token stands for more than the vocabulary's longest
piece (`max_token_bytes`), so a text of N bytes has at least N / max_token_bytes tokens. Turns
whose text alone is longer than the context could hold are left out before anything is
rendered or counted, a rendering longer than that is never tokenized, and a last message that
cannot fit is refused at once with its numbers. What is tokenized is at most the context's
worth of text, a handful of times (bisection).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Mapping, Sequence

from app.core.templates.model import PromptTemplate, RenderedPrompt, TemplateError
from app.core.templates.render import conversation_for, label, render


class ContextOverflow(TemplateError):
    """A text that cannot fit the context. `prompt_tokens` is its count, or when `exact` is
    False a lower bound (the text was too long to be worth tokenizing); `reserve` is the room
    kept for the reply."""

    def __init__(self, message: str, *, prompt_tokens: int, reserve: int, n_ctx: int,
                 exact: bool = True) -> None:
        super().__init__(message)
        self.prompt_tokens, self.reserve, self.n_ctx, self.exact = \
            prompt_tokens, reserve, n_ctx, exact


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def least_tokens(n_bytes: int, max_token_bytes: int | None) -> int:
    """The fewest tokens a text of `n_bytes` can be (0 when the vocabulary is not known)."""
    return -(-n_bytes // max_token_bytes) if max_token_bytes else 0


def _turns(body: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    turns: list[list[dict[str, str]]] = []
    for m in body:
        if m["role"] == "user" or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    return turns


def kept_messages(messages: Sequence[Mapping[str, Any]], dropped_turns: int
                  ) -> list[Mapping[str, Any]]:
    """The messages a fit with `dropped_turns` sends: a leading system message, then the
    turns after the dropped ones."""
    messages = list(messages)
    head = messages[:1] if messages and messages[0].get("role") == "system" else []
    body = messages[len(head):]
    starts = [i for i, m in enumerate(body) if m.get("role") == "user" or i == 0]
    if dropped_turns <= 0 or not starts:
        return messages
    return head + body[starts[min(dropped_turns, len(starts) - 1)]:]


def fit_to_context(template: PromptTemplate, messages: Sequence[Mapping[str, Any]], n_ctx: int,
                   count_tokens: Callable[[str], int], reserve: int, *,
                   system: str | None = None, add_generation_prompt: bool = True,
                   variables: Mapping[str, str] | None = None,
                   max_token_bytes: int | None = None,
                   check: Callable[[], None] | None = None) -> RenderedPrompt:
    """fit_conversation() without the token count."""
    return fit_conversation(template, messages, n_ctx, count_tokens, reserve, system=system,
                            add_generation_prompt=add_generation_prompt, variables=variables,
                            max_token_bytes=max_token_bytes, check=check)[0]


def fit_conversation(template: PromptTemplate, messages: Sequence[Mapping[str, Any]],
                     n_ctx: int, count_tokens: Callable[[str], int], reserve: int, *,
                     system: str | None = None, add_generation_prompt: bool = True,
                     variables: Mapping[str, str] | None = None,
                     max_token_bytes: int | None = None,
                     check: Callable[[], None] | None = None) -> tuple[RenderedPrompt, int]:
    """Render the most recent part of the conversation that fits: prompt tokens + `reserve`
    (room for the reply) <= n_ctx. Returns it with its token count (the BOS the engine adds
    included). `count_tokens` counts a text's tokens; `max_token_bytes` (the vocabulary's
    longest token, in bytes) lets texts that cannot fit be told without counting them;
    `check()` is called between steps (it raises to stop the fit). RenderedPrompt.dropped_turns
    tells the UI what was cut; ContextOverflow when even the last message cannot fit."""
    check = check or (lambda: None)
    conversation = conversation_for(template, messages)
    head = conversation[:1] if conversation and conversation[0]["role"] == "system" else []
    turns = _turns(conversation[len(head):])
    budget = n_ctx - reserve
    # Bytes a text may have and still fit; None: no bound known (every text is counted).
    byte_budget = budget * max_token_bytes if max_token_bytes else None

    def attempt(dropped: int) -> tuple[RenderedPrompt, int, bool]:
        """(rendering, its tokens or a lower bound, whether that is exact)."""
        check()
        kept = head + [m for turn in turns[dropped:] for m in turn]
        rendered = render(template, kept, system=system,
                          add_generation_prompt=add_generation_prompt, variables=variables)
        bos = 1 if rendered.add_bos else 0
        if byte_budget is not None:
            size = utf8_len(rendered.text)
            if size > byte_budget:  # cannot fit: not worth tokenizing
                return rendered, least_tokens(size, max_token_bytes) + bos, False
        check()
        return rendered, count_tokens(rendered.text) + bos, True

    last = max(len(turns) - 1, 0)  # keep at least the last turn
    first, size = _first_that_may_fit(template, head, turns, system, byte_budget)
    if first > last:  # the last turn's own text is longer than the context could hold
        raise _too_long(template, least_tokens(size, max_token_bytes), reserve, n_ctx, False)
    rendered, used, exact = attempt(first)
    if used <= budget:
        return replace(rendered, dropped_turns=first), used
    # Fewer turns never make the prompt longer, so the least number to drop is found by
    # bisection: a handful of renders and token counts even for a long chat.
    low, high = first + 1, last
    if high < low:
        raise _too_long(template, used, reserve, n_ctx, exact)
    rendered, used, exact = attempt(high)
    if used > budget:
        raise _too_long(template, used, reserve, n_ctx, exact)
    best = (high, rendered, used)
    while low < high:
        mid = (low + high) // 2
        candidate, n, _ = attempt(mid)
        if n <= budget:
            best, high = (mid, candidate, n), mid
        else:
            low = mid + 1
    dropped, rendered, used = best
    return replace(rendered, dropped_turns=dropped), used


def _first_that_may_fit(template: PromptTemplate, head: list[dict[str, str]],
                        turns: list[list[dict[str, str]]], system: str | None,
                        byte_budget: int | None) -> tuple[int, int]:
    """(the fewest oldest turns to drop before the kept messages' own text could fit, the
    bytes of the system prompt and the last turn): a rendering holds every message's text,
    so when their bytes alone exceed the budget no rendering of them fits. A preset holds
    only the last message, so nothing is known for it."""
    if byte_budget is None or template.format == "preset" or not turns:
        return 0, 0
    # `system` replaces the leading system message ("" drops it)
    total = utf8_len(system) if system is not None else \
        sum(utf8_len(m["content"]) for m in head)
    first = len(turns)
    last_size = 0
    for i in range(len(turns) - 1, -1, -1):  # from the newest, while the text can still fit
        total += sum(utf8_len(m["content"]) for m in turns[i])
        if i == len(turns) - 1:
            last_size = total
        if total > byte_budget:
            break
        first = i
    return first, last_size


def _too_long(template: PromptTemplate, used: int, reserve: int, n_ctx: int,
              exact: bool) -> ContextOverflow:
    needs = f"needs {used}" if exact else f"needs at least {used}"
    return ContextOverflow(
        f"{label(template)}: the last message alone {needs} tokens and {reserve} are kept for "
        f"the reply, but the context holds {n_ctx}; shorten the message or the system prompt, "
        f"or load the model with a larger context",
        prompt_tokens=used, reserve=reserve, n_ctx=n_ctx, exact=exact)
