"""Turning token bytes into text that is safe to show as it streams.

Two rules, both applied in the runner before a piece leaves it:
- UTF-8 is never cut mid-character: a token may carry only part of a character (byte-fallback
  tokens carry one byte each), so bytes go through an incremental decoder that holds back an
  incomplete sequence until the rest arrives.
- A stop string is never streamed, not even its first characters: text that could still grow
  into a stop string is held back, and released as soon as it can no longer become one.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field


class Utf8Assembler:
    """Bytes in, whole characters out; invalid bytes become U+FFFD (as llama.cpp's own server does)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


@dataclass
class StopMatcher:
    """Finds the first stop string in streamed text, holding back only what could still become one."""

    stops: tuple[str, ...]
    _pending: str = field(default="", init=False)
    matched: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.stops = tuple(s for s in self.stops if s)

    def feed(self, text: str) -> str:
        """Add text; return what can be shown now. After a match, returns the text before it."""
        if self.matched is not None:
            return ""
        buf = self._pending + text
        if not self.stops:
            self._pending = ""
            return buf
        first = None
        for stop in self.stops:
            at = buf.find(stop)
            if at != -1 and (first is None or at < first[0]):
                first = (at, stop)
        if first is not None:
            self.matched = first[1]
            self._pending = ""
            return buf[: first[0]]
        keep = self._longest_partial_suffix(buf)
        self._pending = buf[len(buf) - keep:] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        """The end of the stream: what was held back is shown after all (it never became a stop)."""
        rest, self._pending = self._pending, ""
        return "" if self.matched is not None else rest

    def _longest_partial_suffix(self, buf: str) -> int:
        """Length of the longest end of buf that is the start of some stop string."""
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(buf)), best, -1):
                if buf.endswith(stop[:n]):
                    best = n
                    break
        return best
