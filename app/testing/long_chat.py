"""A long conversation, made cheaply: what a user accumulates over weeks with one model.

    cid = seed_long_chat(store, n=1000, title="A long conversation")
    texts = long_chat_texts(n=1000)   # [(role, content), ...] without a store

Deterministic (the same n gives the same text). User messages use Markdown too (bold, lists,
inline code, now and then a fenced block); replies mix paragraphs, lists, headings, tables and
fenced code in several languages, from one line to a few screens, so a view meets every kind of
row. Used by bench/gui_scale.py, tools/screenshots.py and the tests.
"""

from __future__ import annotations

import random

from app.core.chats import ChatStore

_TOPICS = ("alpacas", "sourdough", "the solar system", "sorting algorithms", "tide pools",
           "medieval castles", "bicycle gears", "tea", "compilers", "jazz harmony", "glaciers",
           "origami", "binary search", "volcanoes", "the printing press", "honey bees")
_WORDS = ("the", "a", "model", "small", "every", "quickly", "because", "it", "runs", "local",
          "reply", "token", "window", "often", "never", "memory", "context", "layer", "weights",
          "which", "makes", "sense", "here", "and", "then", "some", "more", "words", "about",
          "this", "that", "question", "answer", "kind", "of", "detail", "should", "matter")
_CODE = {
    "python": "def {name}(items):\n    \"\"\"Return the {topic} sorted by size.\"\"\"\n"
              "    result = sorted(items, key=len)\n    for i, item in enumerate(result):\n"
              "        print(f\"{{i}}: {{item}}\")\n    return result\n",
    "javascript": "function {name}(items) {{\n  // {topic}, one per line\n  return items\n"
                  "    .filter(Boolean)\n    .map((x, i) => `${{i}}: ${{x}}`)\n    .join('\\n');\n}}\n",
    "bash": "for f in *.gguf; do\n  echo \"{topic}: $f\"\n  sha256sum \"$f\" >> {name}.txt\ndone\n",
    "sql": "SELECT name, COUNT(*) AS n\n  FROM {name}\n WHERE topic = '{topic}'\n GROUP BY name\n"
           " ORDER BY n DESC;\n",
}


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _paragraph(rng: random.Random) -> str:
    return " ".join(_sentence(rng, rng.randint(6, 18)) for _ in range(rng.randint(1, 5)))


def _user(rng: random.Random, i: int) -> str:
    topic = rng.choice(_TOPICS)
    kind = i % 7
    if kind == 0:
        return f"Tell me about **{topic}**."
    if kind == 1:
        return (f"Message {i}: can you compare these for {topic}?\n\n- the first *idea*\n"
                f"- the second, with `inline code`\n- a third one")
    if kind == 2:
        return f"Why does this fail?\n\n```python\nprint(len({topic!r}) / 0)\n```"
    if kind == 3:
        return f"Message {i}. " + _paragraph(rng)
    return f"What about {topic}? " + _sentence(rng, rng.randint(4, 12))


def _reply(rng: random.Random, i: int) -> str:
    topic = rng.choice(_TOPICS)
    parts = [f"Reply {i} about {topic}. " + _paragraph(rng)]
    for _ in range(rng.randint(0, 3)):
        roll = rng.random()
        if roll < 0.3:
            lang = rng.choice(sorted(_CODE))
            code = _CODE[lang].format(name=f"step_{i}", topic=topic)
            parts.append(f"```{lang}\n{code}```")
        elif roll < 0.5:
            parts.append("\n".join(f"{n}. {_sentence(rng, rng.randint(3, 9))}"
                                   for n in range(1, rng.randint(3, 6))))
        elif roll < 0.6:
            parts.append(f"### {topic.title()}\n\n" + _paragraph(rng))
        elif roll < 0.7:
            parts.append("| name | value |\n|---|---|\n"
                         + "\n".join(f"| {rng.choice(_WORDS)} | {rng.randint(1, 999)} |"
                                     for _ in range(rng.randint(2, 5))))
        else:
            parts.append(_paragraph(rng))
    return "\n\n".join(parts)


def long_chat_texts(n: int = 1000, seed: int = 17) -> list[tuple[str, str]]:
    """`n` messages alternating user / assistant (the user first)."""
    rng = random.Random(seed)
    return [("user", _user(rng, i)) if i % 2 == 0 else ("assistant", _reply(rng, i))
            for i in range(n)]


def seed_long_chat(store: ChatStore, n: int = 1000, title: str = "A long conversation",
                   model_id: str | None = None) -> int:
    """A conversation of `n` messages in `store`; its id. Replies carry stats like real ones."""
    conv = store.create_conversation(title=title, model_id=model_id)
    stats = {"generated_tokens": 180, "decode_tps": 24.5, "ttft_s": 0.31, "stop_reason": "eos",
             "model": model_id or "tinyllama-1.1b-chat-v1.0.Q4_K_M"}
    for role, content in long_chat_texts(n):
        store.add_message(conv.id, role, content, stats=stats if role == "assistant" else None)
    return conv.id
