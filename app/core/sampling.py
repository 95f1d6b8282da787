"""The sampling knobs of one generation, checked in one place before llama.cpp sees them.

One place builds a `SamplingParams`: the turn pipeline (app/core/turns/knobs.py), from the app's
settings, the model's saved ones and each face's overrides (the CLI's flags, the request's fields
in `corral serve`, the window's knobs). A SamplingParams cannot be made with a value llama.cpp cannot honour: a wrong type, NaN or
±infinity (every comparison with NaN is false, so range checks alone let it through), a value
out of range, or text that is not valid Unicode. `SamplingError` names the field, so each face
can say which of its own flags or fields is wrong.

Bounds are where llama.cpp stops behaving: a penalty window of 2**31 tokens made the runner
allocate 8.4 GB and take 21 s for a 5-token reply (the runner also clamps it to the context).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.core.inputs import text_problem
from app.core.memory_plan import format_bytes

INT32_MAX = 2**31 - 1
MAX_REPEAT_LAST_N = 1 << 20   # tokens; more than any context
MAX_STOPS = 64                # stop strings of one generation, the template's included
MAX_STOP_CHARS = 1000
MAX_GRAMMAR_BYTES = 1 << 20

# field: (integer?, lowest, highest). repeat_penalty must also be more than 0 (it divides).
LIMITS: dict[str, tuple[bool, float, float]] = {
    "max_tokens": (True, 0, INT32_MAX),          # 0 = until the context is full
    "temperature": (False, 0.0, 2.0),
    "top_k": (True, 0, INT32_MAX),               # 0 = off
    "top_p": (False, 0.0, 1.0),
    "min_p": (False, 0.0, 1.0),
    "repeat_penalty": (False, 0.0, 10.0),
    "repeat_last_n": (True, -1, MAX_REPEAT_LAST_N),  # -1 = the whole context
    "seed": (True, -2**63, 2**64 - 1),           # None = random; llama.cpp uses the low 32 bits
}


class SamplingError(ValueError):
    """A sampling value that cannot be used: `field` is its SamplingParams name, `problem`
    the rest of the sentence ("must be between 0 and 2, not nan")."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem


def check_value(name: str, value: Any) -> None:
    """Raise SamplingError unless `value` is usable for the numeric field `name`."""
    integer, low, high = LIMITS[name]
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok:
        raise SamplingError(name, f"must be {kind}, not {value!r}")
    if not integer and not math.isfinite(value):
        raise SamplingError(name, f"must be a finite number, not {value!r}")
    if not low <= value <= high or (name == "repeat_penalty" and value <= 0):
        lowest = "more than 0" if name == "repeat_penalty" else f"at least {_shown(low)}"
        raise SamplingError(name, f"must be {lowest} and at most {_shown(high)}, not {value!r}")


def _shown(bound: float) -> str:
    return f"{bound:g}" if isinstance(bound, float) else str(bound)


def check_stops(stop: Any) -> None:
    if not isinstance(stop, (tuple, list)) or not all(isinstance(s, str) for s in stop):
        raise SamplingError("stop", "must be a list of strings")
    if len(stop) > MAX_STOPS:
        raise SamplingError("stop", f"takes at most {MAX_STOPS} strings, not {len(stop)}")
    for i, s in enumerate(stop):
        if len(s) > MAX_STOP_CHARS:
            raise SamplingError("stop", f"strings are at most {MAX_STOP_CHARS} characters; "
                                        f"string {i + 1} has {len(s)}")
        problem = text_problem(s)
        if problem:
            raise SamplingError("stop", f"string {i + 1} {problem}")


def check_grammar(grammar: Any) -> None:
    if grammar is None:
        return
    if not isinstance(grammar, str):
        raise SamplingError("grammar", "must be GBNF text")
    problem = text_problem(grammar)
    if problem:
        raise SamplingError("grammar", problem)
    if len(grammar.encode("utf-8")) > MAX_GRAMMAR_BYTES:
        raise SamplingError("grammar", f"is larger than the limit of {format_bytes(MAX_GRAMMAR_BYTES)}")


@dataclass(frozen=True)
class SamplingParams:
    """Dalai's knobs plus min_p. Defaults follow llama.cpp's CLI. Checked when made
    (SamplingError)."""

    max_tokens: int = 256
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64
    seed: int | None = None  # None = a fresh random seed, reported in the stats
    stop: tuple[str, ...] = ()
    grammar: str | None = None  # GBNF, to constrain the output (JSON mode, tests)

    def __post_init__(self) -> None:
        for name in LIMITS:
            value = getattr(self, name)
            if not (name == "seed" and value is None):
                check_value(name, value)
        check_stops(self.stop)
        check_grammar(self.grammar)
