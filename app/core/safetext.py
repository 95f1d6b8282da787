"""Text safe to show on a terminal (or in one line of a log or a message box).

Names that come from outside — a GGUF's `general.name`, a file name, a server's error text —
may hold escape sequences (ESC [ … recolours or rewrites the terminal), newlines (a forged line
in a table or a log), bidi overrides (text that reads differently from what it is) or bytes
that are not UTF-8 (a file name decoded with surrogate escapes, which stdout cannot encode).
`terminal_safe` shows every such character as a visible escape, so the text stays one line and
means what it says. Every face prints outside text through it.
"""

from __future__ import annotations

__all__ = ["terminal_safe"]


def _escape(c: str) -> str:
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return repr(c)[1:-1]  # \n, \x1b, \u202e, \ud800 …


def terminal_safe(text: object) -> str:
    """`text` (str() of it) with control, format, separator, unassigned and surrogate characters
    escaped (`\\x1b`, `\\n`, `\\u202e`, `\\xe9` for an undecodable byte); ordinary text, spaces
    and non-ASCII letters are kept as they are."""
    text = text if isinstance(text, str) else str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)
