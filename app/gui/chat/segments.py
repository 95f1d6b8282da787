"""Split a Markdown reply into prose and fenced code blocks, so each code block can get its own
widget (monospace, highlighted, a Copy button) and a streaming reply re-renders only its tail."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")


@dataclass(frozen=True)
class Segment:
    kind: str          # "text" | "code"
    text: str          # prose as Markdown, or the code itself (no fences)
    lang: str = ""     # the fence's info string (first word), e.g. "python"
    closed: bool = True  # False for a code block still being written


def split_markdown(text: str) -> list[Segment]:
    """Prose and code segments in order; an unclosed fence runs to the end (streaming)."""
    segments: list[Segment] = []
    prose: list[str] = []
    code: list[str] = []
    fence, lang = "", ""
    for line in text.split("\n"):
        if not fence:
            m = _FENCE.match(line)
            if m:
                if prose:
                    joined = "\n".join(prose)
                    if joined.strip():
                        segments.append(Segment("text", joined))
                    prose = []
                fence, lang, code = m.group(1), m.group(2), []
            else:
                prose.append(line)
        else:
            stripped = line.strip()
            if stripped and stripped[0] == fence[0] and set(stripped) == {fence[0]} \
                    and len(stripped) >= len(fence) and len(line) - len(line.lstrip()) <= 3:
                segments.append(Segment("code", "\n".join(code), lang, True))
                fence, code = "", []
            else:
                code.append(line)
    if fence:
        segments.append(Segment("code", "\n".join(code), lang, False))
    elif prose and "\n".join(prose).strip():
        segments.append(Segment("text", "\n".join(prose)))
    return segments
