"""Size limits inside the template sandbox: the first line of defence against a template that
builds a huge value.

The hard bound is the render worker (a child process with an address-space limit and a
wall-clock kill, see render_worker.py). These checks run before the costly operation where its
size can be told from the arguments, so a hostile template usually gets a precise message in
milliseconds, and they are all there is on Windows, which has no address-space limit for the
worker. Compile-time constant folding, which would run these operations outside the sandbox, is
switched off in sandbox.py.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from typing import Any, Callable, Iterable

from jinja2.exceptions import SecurityError

MAX_OUTPUT_CHARS = 4_000_000  # a whole rendering; no single value may be larger either
MAX_VALUE_CHARS = 1_000_000   # an argument, a stored value, a repeated sequence
MAX_INT_BITS = 100_000        # ~30,000 digits: big enough for any arithmetic a template does
MAX_JSON_INDENT = 64
# All the text that filters and calls of one rendering may build, kept or not: the bound on
# memory where the operating system sets none (Windows), and a fast refusal everywhere.
MAX_CHARS_BUILT = 16 * MAX_OUTPUT_CHARS
_built = threading.local()  # one rendering runs in one thread

# printf-style conversions (`'%2000000000s' % x`) and str.format fields (`'{:>2000000000}'`):
# their width and precision are sizes too.
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\d*)(?:\.(\d*))?")
_FORMAT_FIELD = re.compile(r"\{[^{}]*?:([^{}]*)\}")
_DIGITS = re.compile(r"\d+")


def refuse(what: str) -> SecurityError:
    return SecurityError(f"{what} is too large for a template")


def start_rendering() -> None:
    _built.chars = 0


def _spend(value: Any) -> None:
    if isinstance(value, (str, list, tuple, dict)):
        _built.chars = getattr(_built, "chars", 0) + len(value)
        if _built.chars > MAX_CHARS_BUILT:
            raise refuse(f"the text built ({_built.chars:,} characters in all)")


def check_size(value: Any, limit: int = MAX_VALUE_CHARS) -> Any:
    if isinstance(value, (str, list, tuple, dict)) and len(value) > limit:
        raise refuse(f"a value of {len(value):,} items")
    if isinstance(value, int) and not isinstance(value, bool) \
            and value.bit_length() > MAX_INT_BITS:
        raise refuse("a number")
    return value


def check_arguments(args: Iterable[Any]) -> None:
    """No argument of a call is huge; no number argument is a size beyond any real use
    (`'a'|center(3000000000)`, `x.ljust(…)`, `list|slice(10**9)`, `indent(…)`)."""
    for value in args:
        check_size(value)
        if isinstance(value, int) and not isinstance(value, bool) \
                and abs(value) > MAX_VALUE_CHARS:
            raise refuse(f"the number {value:,} as an argument")


def check_format(fmt: str, args: Any) -> None:
    """`fmt % args` or `fmt.format(…)`: widths and precisions written into the format count."""
    specs = [part for m in _PERCENT_SPEC.finditer(fmt) for part in m.groups(default="")]
    specs += _FORMAT_FIELD.findall(fmt)
    for spec in specs:
        for digits in _DIGITS.findall(spec):
            if len(digits) > 7 or int(digits) > MAX_VALUE_CHARS:
                raise refuse(f"a format width of {digits}")
    values = args.values() if isinstance(args, dict) else args if isinstance(args, tuple) \
        else (args,)
    check_arguments(values)


def check_binop(operator: str, left: Any, right: Any) -> None:
    """The arithmetic operators whose result can be far larger than their operands."""
    if operator == "**" and isinstance(left, int) and isinstance(right, int):
        if abs(right) > 1024 or (right > 0 and max(left.bit_length(), 1) * right > MAX_INT_BITS):
            raise refuse("a power")
    elif operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int) \
                    and len(seq) * n > MAX_VALUE_CHARS:
                raise refuse("a repetition")
        if isinstance(left, int) and isinstance(right, int) \
                and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise refuse("a product")
    elif operator == "%" and isinstance(left, str):
        check_format(left, right)


def _replace(s: Any, old: Any, new: Any) -> None:
    if isinstance(s, str) and isinstance(old, str) and isinstance(new, str):
        hits = s.count(old) if old else len(s) + 1
        if len(s) + hits * max(len(new) - len(old), 0) > MAX_OUTPUT_CHARS:
            raise refuse("the result of replace")


def _join(items: Any, sep: Any) -> None:
    if isinstance(items, (list, tuple)) and isinstance(sep, str):
        size = sum(len(x) for x in items if isinstance(x, str))
        if size + len(sep) * max(len(items) - 1, 0) > MAX_OUTPUT_CHARS:
            raise refuse("the result of join")


def _first(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, key: str,
           default: Any = None) -> Any:
    return args[i] if len(args) > i else kwargs.get(key, default)


# Filters whose result size can be told before they run: (value, further args, kwargs).
_FILTER_CHECKS: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], None]] = {
    "format": lambda v, a, k: isinstance(v, str) and check_format(v, a or k),
    "replace": lambda v, a, k: _replace(v, _first(a, k, 0, "old"), _first(a, k, 1, "new")),
    "join": lambda v, a, k: _join(v, _first(a, k, 0, "d", "")),
}


def checked(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter with its arguments checked before it runs and its result after. The filtered
    value itself is not limited (a long message may be trimmed). functools.wraps keeps jinja's
    pass_context / pass_eval_context mark, which puts one argument before the value."""
    at = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
    check = _FILTER_CHECKS.get(name)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        value, extra = (args[at] if len(args) > at else None), args[at + 1:]
        check_arguments((*extra, *kwargs.values()))
        if check is not None:
            check(value, extra, kwargs)
        return check_result(func(*args, **kwargs))

    return wrapper


def check_result(value: Any) -> Any:
    """A filter's or call's result: no larger than a whole rendering, and counted."""
    check_size(value, MAX_OUTPUT_CHARS)
    _spend(value)
    return value


def check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """A call from template code (`x.ljust(n)`, `sep.join(xs)`, `s.replace(a, b)`,
    `fmt.format(…)`): refused when an argument or the result it would build is too large."""
    check_arguments((*args, *kwargs.values()))
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(obj, "__name__", "")  # (str.format: sandbox.py checks jinja's wrapper)
    if name == "replace" and len(args) >= 2:
        _replace(owner, args[0], args[1])
    elif name == "join" and args:
        _join(args[0], owner)
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        if len(owner) * longest > MAX_OUTPUT_CHARS:
            raise refuse("the result of translate")
    elif name == "expandtabs" and args and isinstance(args[0], int):
        if len(owner) + owner.count("\t") * args[0] > MAX_OUTPUT_CHARS:
            raise refuse("the result of expandtabs")


def check_json(value: Any, indent: int | None) -> None:
    """tojson: a bound on the text json.dumps would build (one C call: nothing can stop it
    once it runs), from a walk over the value that stops as soon as the bound is passed. The
    walk holds one iterator per level, not the items: `[s] * 999999` costs nothing to walk."""
    if isinstance(indent, int) and indent > MAX_JSON_INDENT:
        raise refuse(f"tojson(indent={indent})")
    per_level = (indent or 0) + 2
    size, stack = 0, [iter((value,))]
    while stack:
        item = next(stack[-1], _END)
        if item is _END:
            stack.pop()
            continue
        size += len(stack) * per_level + (len(item) if isinstance(item, str) else 8)
        if size > MAX_OUTPUT_CHARS:
            raise refuse("the result of tojson")
        if isinstance(item, dict):
            stack.append(itertools.chain.from_iterable(item.items()))
        elif isinstance(item, (list, tuple)):
            stack.append(iter(item))


_END = object()
