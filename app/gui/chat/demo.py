"""Demo conversations for screenshots: `seed_demo(store, model)` writes a few chats with code,
Markdown and stats into a ChatStore; `show_demo(screen, mode)` opens the chat or the completion
one on a ChatScreen built on that store (call `screen.refresh_models()` first if needed)."""

from __future__ import annotations

from typing import Any

from app.core.chats import ChatStore

CHAT_TITLE = "Reverse the words of a sentence"
COMPLETION_TITLE = "Dalai preset: a haiku about llamas"

_REPLY_1 = """Here is a short function that reverses the **order of the words** and keeps each \
word as it is:

```python
def reverse_words(sentence: str) -> str:
    \"\"\"'the quick fox' -> 'fox quick the'\"\"\"
    return " ".join(reversed(sentence.split()))


print(reverse_words("llamas live in the Andes"))  # Andes the in live llamas
```

- `split()` with no argument splits on any run of whitespace.
- `reversed()` walks the list backwards without copying it.
"""

_REPLY_2 = """Yes: slicing with a step of `-1` reverses any sequence, so `words[::-1]` is \
the same as `list(reversed(words))`. For a sentence of a few words both take well under a \
microsecond; pick the one that reads best."""


def _stats(tokens: int, tps: float, ttft: float, seed: int, model: str) -> dict[str, Any]:
    return {"generated_tokens": tokens, "decode_tps": tps, "ttft_s": ttft, "stop_reason": "eos",
            "seed": seed, "model": model, "template": "zephyr", "prompt_tokens": 96,
            "reused_tokens": 0}


def seed_demo(store: ChatStore, model_id: str | None = None, model_path: str | None = None
              ) -> dict[str, int]:
    """Write the demo conversations; returns {"chat": id, "completion": id}."""
    model = model_id or "tinyllama-1.1b-chat-v1.0.Q4_K_M"
    old = store.create_conversation(title="Packing list for a trek in Peru", model_id=model,
                                    model_path=model_path)
    store.add_message(old.id, "user", "What should I pack for a four-day trek?")
    store.add_message(old.id, "assistant", "Layers, a rain jacket, sun cream and good boots.",
                      stats=_stats(14, 24.8, 0.31, 7, model))
    completion = store.create_conversation(title=COMPLETION_TITLE, model_id=model,
                                           model_path=model_path, mode="completion",
                                           template_id="dalai-default")
    prompt = ("Below is an instruction that describes a task. Write a response that "
              "appropriately completes the request.\n\n### Instruction:\nWrite a haiku about "
              "llamas in the Andes.\n\n### Response:\n")
    store.add_message(completion.id, "user", prompt)
    store.add_message(completion.id, "assistant",
                      "Wool against the wind,\nsoft steps on the old stone path,\n"
                      "clouds graze at their feet.", stats=_stats(21, 25.9, 0.27, 42, model))
    chat = store.create_conversation(title=CHAT_TITLE, model_id=model, model_path=model_path,
                                     system_prompt="You are a concise Python expert.")
    store.add_message(chat.id, "user", "Write a Python function that reverses the words of "
                                       "a sentence.")
    store.add_message(chat.id, "assistant", _REPLY_1, stats=_stats(118, 26.4, 0.42, 1234, model))
    store.add_message(chat.id, "user", "Is words[::-1] any different?")
    store.add_message(chat.id, "assistant", _REPLY_2, stats=_stats(52, 27.1, 0.18, 99, model))
    return {"chat": chat.id, "completion": completion.id}


def show_demo(screen, mode: str = "chat", *, side_panel: bool = True, tab: str = "Parameters"
              ) -> None:
    """Open the demo conversation of `mode` on `screen` (a ChatScreen on the seeded store)."""
    title = CHAT_TITLE if mode == "chat" else COMPLETION_TITLE
    conv = next((c for c in screen.session.store.conversations() if c.title == title), None)
    if conv is None:
        raise LookupError("seed_demo() has not been run on this store")
    screen.refresh_models()
    screen.open_conversation(conv.id)
    screen.toolbar.panel.setChecked(side_panel)
    index = next(i for i in range(screen.side.count()) if screen.side.tabText(i) == tab)
    screen.side.setCurrentIndex(index)
