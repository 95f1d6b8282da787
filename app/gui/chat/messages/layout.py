"""Where each row sits, without laying out 1000 documents: a row's height is exact once it has
been rendered (remembered per message, version and width, even after its documents are
evicted), and estimated from its text's shape before that (line lengths, code lines: a few
microseconds a row). Positions are prefix sums; a row found taller than estimated moves only
the rows below it, and the view keeps what the reader looks at in place (view.py anchors).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate


PARAGRAPH_GAP = 6  # Qt's Markdown puts about this between blocks (measured)


@dataclass(frozen=True)
class Shape:
    """What an estimate needs from a message's text (computed once per version)."""

    prose_lines: tuple[int, ...]   # the length of each non-blank prose line
    prose_breaks: int              # blank lines and list/table rows: block gaps
    code_lines: tuple[int, ...]    # the length of each code line
    code_blocks: int
    parts: int                     # segments, about (a block between two prose parts: +2)


def shape_of(text: str) -> Shape:
    """One pass over the lines (a fence opens or closes a code block; close enough to
    segments.split_markdown for an estimate, at a fraction of its cost)."""
    prose: list[int] = []
    code: list[int] = []
    breaks = blocks = 0
    fence = ""
    parts = 1
    for line in text.split("\n"):
        stripped = line.lstrip()
        if stripped[:3] in ("```", "~~~"):
            if not fence:
                fence = stripped[:3]
                blocks += 1
                parts += 2
                continue
            if stripped.rstrip() == fence[0] * len(stripped.rstrip()):
                fence = ""
                continue
        if fence:
            code.append(len(line))
        elif not stripped:
            breaks += 1
        else:
            prose.append(len(line))
            if stripped[0] in "-*+|#>" or stripped[0].isdigit():
                breaks += 1
    return Shape(tuple(prose), breaks, tuple(code), blocks, parts)


def estimate_body(shape: Shape, width: int, char_w: float, line: int, mono_w: float,
                  mono_line: int, code_chrome: int, part_gap: int) -> int:
    """The body's height at `width` as the documents would lay it out, roughly."""
    per_line = max(8, int(width / char_w))
    wrapped = sum((n + per_line - 1) // per_line for n in shape.prose_lines)
    height = wrapped * line + shape.prose_breaks * PARAGRAPH_GAP
    if shape.code_blocks:
        per_code = max(8, int((width - 16) / mono_w))
        code = sum(max(1, (n + per_code - 1) // per_code) for n in shape.code_lines)
        height += code * mono_line + shape.code_blocks * code_chrome
    height += (shape.parts - 1) * part_gap
    return max(line, math.ceil(height))


class RowLayout:
    """Heights and tops of every row. `tops[i]` is row i's top, `tops[-1]` the total."""

    def __init__(self) -> None:
        self.heights: list[int] = []
        self.tops: list[int] = [0]
        self.measured: list[bool] = []

    def reset(self, heights: list[int], measured: list[bool]) -> None:
        self.heights = list(heights)
        self.measured = list(measured)
        self.tops = [0, *accumulate(self.heights)]

    def __len__(self) -> int:
        return len(self.heights)

    @property
    def total(self) -> int:
        return self.tops[-1]

    def set_height(self, row: int, height: int, measured: bool = True) -> int:
        """Set one row's height; the change (the rows below moved by it)."""
        self.measured[row] = measured
        delta = height - self.heights[row]
        if delta:
            self.heights[row] = height
            tops = self.tops
            for i in range(row + 1, len(tops)):
                tops[i] += delta
        return delta

    def append(self, height: int, measured: bool) -> None:
        self.heights.append(height)
        self.measured.append(measured)
        self.tops.append(self.tops[-1] + height)

    def truncate(self, rows: int) -> None:
        del self.heights[rows:], self.measured[rows:], self.tops[rows + 1:]

    def row_at(self, y: int) -> int:
        """The row under y (clamped to the rows there are; -1 when there are none)."""
        if not self.heights:
            return -1
        return min(len(self.heights) - 1, max(0, bisect_right(self.tops, y) - 1))

    def rows_between(self, y0: int, y1: int) -> range:
        if not self.heights:
            return range(0)
        return range(self.row_at(y0), self.row_at(max(y0, y1 - 1)) + 1)
