"""Context fitting: drop the oldest turns, never the system prompt nor the last user message."""

from __future__ import annotations

import pytest

from app.core.templates import TemplateError, TemplateRegistry, fit_to_context, render


def words(text: str) -> int:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return len(text.split())


@pytest.fixture(scope="module")
def vicuna(tmp_path_factory):
    return TemplateRegistry(user_folder=tmp_path_factory.mktemp("u")).get("vicuna-v1.1")


def chat(n_turns: int) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": "Be brief."}]
    for i in range(n_turns - 1):
        msgs += [{"role": "user", "content": f"question {i} " + "w " * 10},
                 {"role": "assistant", "content": f"answer {i} " + "w " * 10}]
    msgs.append({"role": "user", "content": "last question"})
    return msgs


def test_fits_untouched(vicuna):
    msgs = chat(3)
    full = render(vicuna, msgs)
    out = fit_to_context(vicuna, msgs, n_ctx=1000, count_tokens=words, reserve=100)
    assert out.text == full.text and out.dropped_turns == 0


def test_drops_oldest_turns_first_and_keeps_system_and_last_question(vicuna):
    msgs = chat(6)  # 5 earlier exchanges of 24 words + the system prompt + the question
    out = fit_to_context(vicuna, msgs, n_ctx=100, count_tokens=words, reserve=30)
    assert out.text.startswith("Be brief. USER: ")
    assert out.text.endswith("USER: last question ASSISTANT:")
    assert words(out.text) + 1 + 30 <= 100  # +1: the BOS the engine adds
    kept = [i for i in range(5) if f"question {i} " in out.text]
    assert kept == list(range(out.dropped_turns, 5))  # the oldest went first
    assert out.dropped_turns >= 1
    # Dropping one turn fewer would not have fitted.
    longer = render(vicuna, msgs[:1] + msgs[1 + 2 * (out.dropped_turns - 1):])
    assert words(longer.text) + 1 + 30 > 100


def test_exact_number_of_drops(vicuna):
    msgs = chat(11)
    for n_ctx in (60, 90, 150, 200, 400):
        out = fit_to_context(vicuna, msgs, n_ctx=n_ctx, count_tokens=words, reserve=20)
        fitting = [k for k in range(11) if words(render(
            vicuna, msgs[:1] + msgs[1 + 2 * k:]).text) + 1 + 20 <= n_ctx]
        assert out.dropped_turns == min(fitting)


def test_last_message_that_cannot_fit_raises_with_the_numbers(vicuna):
    msgs = [{"role": "user", "content": "w " * 200}]
    with pytest.raises(TemplateError, match=r"needs 2\d\d tokens and 50 are kept .* holds 128"):
        fit_to_context(vicuna, msgs, n_ctx=128, count_tokens=words, reserve=50)


def test_system_prompt_argument_is_kept(vicuna):
    msgs = chat(8)[1:]
    out = fit_to_context(vicuna, msgs, n_ctx=80, count_tokens=words, reserve=10,
                         system="Custom system.")
    assert out.text.startswith("Custom system. USER:") and out.dropped_turns > 0
