"""Checks for text and files that come from outside, before anything acts on them.

- `text_problem(text)`: why a str is not text that can be encoded as UTF-8 (a lone surrogate
  from a JSON "\\ud800" escape, or a byte that was not UTF-8 in a command-line argument, which
  Python keeps as a surrogate escape), or None. Such a string crashed the llama.cpp runner.
- `bad_text(data)`: the first string in parsed JSON that is not text, as a path a person can
  find ("messages[2].content"), or None.

Files and JSON are read with bounds by app.core.statefile (read_bytes, parse, parse_file).
"""

from __future__ import annotations

from typing import Any

__all__ = ["bad_text", "text_problem"]


def text_problem(text: str, *, from_bytes: bool = False) -> str | None:
    """None for text that encodes as UTF-8; else what is wrong and where, e.g. "holds a lone
    surrogate (\\ud800) at character 3". `from_bytes`: the text was decoded from bytes with
    surrogate escapes (a command-line argument, a file name), so U+DC80…U+DCFF are bytes that
    were not UTF-8 and are named as such."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        if from_bytes and 0xDC80 <= code <= 0xDCFF:
            return f"holds a byte that is not UTF-8 (0x{code - 0xDC00:02x}) at character {exc.start}"
        return (f"holds a lone surrogate (\\u{code:04x}) at character {exc.start}, "
                f"which is not a character")
    return None


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def bad_text(data: Any) -> tuple[str, str] | None:
    """(where, what is wrong) for the first string in parsed JSON that is not text, e.g.
    ("messages[0].content", "holds a lone surrogate …"); None when every string is text.
    Iterative, so any depth is safe (bound the depth when parsing: statefile.parse)."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                return path or "the value", problem
        elif isinstance(value, (dict, list)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in reversed(list(items)):
                if isinstance(key, str) and text_problem(key):
                    return path or "the value", f"has a key that {text_problem(key)}"
                stack.append((item, _join(path, key)))
    return None
