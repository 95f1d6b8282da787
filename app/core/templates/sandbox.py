"""Render untrusted Jinja (a GGUF file's tokenizer.chat_template, a user's template) safely.

A chat template inside a downloaded model file is code written by a stranger. llama-cpp-python
once rendered it with a plain Environment (CVE-2024-34359: `__class__.__mro__`, `__globals__`,
`os.popen` from a template). Here, in layers:

1. jinja2's ImmutableSandboxedEnvironment (attributes starting with "_" and Python internals
   refused, str.format sandboxed, lists/dicts immutable), with the options Hugging Face uses
   (trim_blocks, lstrip_blocks, loopcontrols) so real templates render as they do there;
2. before anything runs, the parsed template is checked: dunder names it does not define
   itself, dunder strings, template loading (include/import/extends) and the helpers with
   reachable globals (lipsum, cycler, joiner, self) are refused with a message that says
   what was found;
3. an unsafe attribute found at run time raises at once (jinja's default only returns an
   Undefined that raises when printed, so `{% if x.__class__ %}` would pass silently);
4. no constant folding at compile time, and size limits on operators, calls and filters
   (limits.py), the output size, and a wall-clock deadline enforced by a watchdog thread
   (a template can loop without touching any hook).

This module renders in the current process. A template that is not Corral's own renders in
the render worker (render_worker.py), a child process that bounds time and memory whatever
the template does; this module runs there.
"""

from __future__ import annotations

import ctypes
import json
import threading
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.ext import loopcontrols
from jinja2.compiler import CodeGenerator
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.core.templates.limits import (MAX_OUTPUT_CHARS, check_binop, check_call,
                                       check_format, check_json, check_result, check_size,
                                       checked, start_rendering)
from app.core.templates.model import TemplateError

# Real chat templates render in milliseconds; 4 s leaves a hostile one's refusal (process start,
# deadline, kill) well inside the 6 s users were promised, even on a busy machine.
DEADLINE_SECONDS = 4.0
# Globals whose Python functions reach module globals; templates never need them.
_REFUSED_NAMES = {"lipsum", "cycler", "joiner", "self", "config", "request", "os", "subprocess",
                  "builtins", "globals", "import", "eval", "exec", "open"}
# The first jinja2 release with all known sandbox escapes fixed (CVE-2024-56326, CVE-2025-27516).
_SAFE_JINJA = (3, 1, 6)


class _Raised(jinja2.TemplateError):
    """raise_exception() called by the template itself (it refuses the conversation)."""


class _Timeout(BaseException):
    """Delivered into the rendering thread by the watchdog; BaseException so the template's
    own error handling and ours (`except Exception`) cannot swallow it."""


def _raise_exception(message: str) -> None:
    raise _Raised(str(message))


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(str(fmt))


def _tojson(value: Any, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False, ensure_ascii: bool = False) -> str:
    # Hugging Face replaces jinja's HTML-escaping tojson with plain json.dumps; so do we.
    check_json(value, indent)
    return json.dumps(value, indent=indent, separators=separators, sort_keys=sort_keys,
                      ensure_ascii=ensure_ascii)


class _Namespace(jinja2.utils.Namespace):
    """namespace() whose stored values are size-checked: `ns.s = ns.s ~ ns.s` in a loop would
    otherwise double a string until memory runs out."""

    def __setitem__(self, name: str, value: Any) -> None:
        check_size(value)
        super().__setitem__(name, value)


class _NoFolding(CodeGenerator):
    """Jinja evaluates constant expressions while it compiles (`{{ 'a'|center(3000000000) }}`,
    `{{ ((10**1024)**1024)**16 }}`), calling filters and operators directly, outside the
    sandbox's checks and outside any deadline. With the optimizer off (optimized=False) this
    is the one other place that folds: every output expression is left to run time."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Any, finalize: Any) -> str:
        if isinstance(node, nodes.TemplateData):
            return super()._output_child_to_const(node, frame, finalize)
        raise nodes.Impossible()


class _Sandbox(ImmutableSandboxedEnvironment):
    code_generator_class = _NoFolding
    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of a "
                            f"{type(obj).__name__!r} object is not allowed")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        check_call(__obj, args, kwargs)
        return check_result(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Any:
        # jinja hands out its own wrapper for str.format/format_map when the attribute is read,
        # so call() never sees the method: the width check goes into that wrapper.
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def checked_format(*args: Any, **kwargs: Any) -> str:
            check_format(fmt, (*args, *kwargs.values()))
            return check_result(wrapped(*args, **kwargs))

        return checked_format


class _Unlimited(ImmutableSandboxedEnvironment):
    """The sandbox without the size limits and with jinja's compile-time folding: only for
    tests, which show that the render worker bounds time and memory even then."""

    unsafe_undefined = _Sandbox.unsafe_undefined


def _environment(limits: bool = True) -> ImmutableSandboxedEnvironment:
    options = dict(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols],
                   autoescape=False, keep_trailing_newline=False)
    env = _Sandbox(optimized=False, **options) if limits else _Unlimited(**options)
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now,
                       namespace=_Namespace)
    env.filters["tojson"] = _tojson if limits else json.dumps
    if limits:
        env.filters.update({name: checked(name, f) for name, f in env.filters.items()})
    return env


_ENV = _environment()


def drop_limits_for_tests() -> None:
    """Test hook (see render_worker.TEST_ENV): render without the size limits."""
    global _ENV
    _ENV = _environment(limits=False)
    _compiled.cache_clear()


def _own_names(tree: nodes.Template) -> set[str]:
    """The names a template defines itself: its macros, their parameters, its set/for targets.
    They are the template's own (YandexGPT's `__render_tool`), not Python internals."""
    names = {m.name for m in tree.find_all(nodes.Macro)}
    names.update(n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param"))
    return names


def _refusal(node: nodes.Node, own: set[str]) -> str | None:
    """Why a parsed node is not allowed in a chat template, or None."""
    if isinstance(node, (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        return "it tries to load another template"
    if isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
        return f"it reads the private attribute {node.attr!r}"
    if isinstance(node, nodes.Const) and isinstance(node.value, str) and "__" in node.value:
        return f"it names a Python internal ({node.value[:40]!r})"
    if isinstance(node, nodes.Name) and (node.name in _REFUSED_NAMES or (
            node.name.startswith("__") and node.name not in own)):
        return f"it uses {node.name!r}, which chat templates have no use for"
    return None


class _Refused(Exception):
    """The parse-time check found something a chat template has no business doing."""


class ConversationRefused(TemplateError):
    """The template ran and refused this conversation (raise_exception, or an error that
    depends on the messages). `reason`: the template's own words, or the error."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class TemplateFault(TemplateError):
    """The template fails whatever the conversation: it does not compile, is refused, runs out
    of time or memory, or recurses too deeply. A caller may remember it for that template."""


@lru_cache(maxsize=64)
def _compiled(source: str) -> jinja2.Template:
    # Cached by source: a chat re-renders the same template every turn. Only templates that
    # passed the checks are cached (a raising call is never cached).
    tree = _ENV.parse(source)
    own = _own_names(tree)
    for node in tree.find_all(nodes.Node):
        reason = _refusal(node, own)
        if reason:
            raise _Refused(reason)
    return _ENV.from_string(source)


def compile_template(source: str, name: str) -> jinja2.Template:
    """Parse and check a template; TemplateError (naming `name`) if it is broken or unsafe."""
    check_jinja_version(name)
    try:
        return _compiled(source)
    except TemplateSyntaxError as exc:
        raise TemplateFault(f"{name}: the template is not valid Jinja "
                            f"(line {exc.lineno}: {exc.message})") from None
    except _Refused as exc:
        raise TemplateFault(f"{name}: refused, {exc}; nothing was run") from None
    except RecursionError:
        raise TemplateFault(f"{name}: refused, the template is nested too deeply") from None
    except MemoryError:
        raise TemplateFault(f"{name}: {TOO_BIG}") from None


def too_slow(seconds: float) -> str:
    return f"rendering took longer than {seconds:g} s and was stopped"


TOO_BIG = "the template needs more memory than a chat template may use, and was stopped"


def check_jinja_version(name: str) -> None:
    if tuple(int(p) for p in jinja2.__version__.split(".")[:3] if p.isdigit()) < _SAFE_JINJA:
        raise TemplateError(f"{name}: jinja2 {jinja2.__version__} has known sandbox escapes; "
                            f"Corral needs jinja2 3.1.6 or newer to render templates")


def render_jinja(source: str, name: str, variables: dict[str, Any],
                 seconds: float | None = None) -> str:
    """Render `source` with `variables` in the sandbox, under the limits above, in this
    process: for Corral's own templates, and inside the render worker for all others."""
    template = compile_template(source, name)
    seconds = DEADLINE_SECONDS if seconds is None else seconds

    def run() -> str:
        start_rendering()
        parts: list[str] = []
        size = 0
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise SecurityError(f"the output passed {MAX_OUTPUT_CHARS:,} characters")
            parts.append(chunk)
        return "".join(parts)

    try:
        return _run_with_deadline(run, seconds)
    except _Timeout:
        raise TemplateFault(f"{name}: {too_slow(seconds)}") from None
    except _Raised as exc:
        raise ConversationRefused(f"{name}: the template refused this conversation: {exc}",
                                  str(exc)) from None
    except SecurityError as exc:
        raise TemplateError(f"{name}: refused by the sandbox: {exc}") from None
    except RecursionError:
        raise TemplateFault(f"{name}: the template recursed too deeply") from None
    except MemoryError:
        raise TemplateFault(f"{name}: {TOO_BIG}") from None
    except Exception as exc:  # any error inside a stranger's template is that template's fault
        said = f"{type(exc).__name__}: {exc}"
        raise ConversationRefused(f"{name}: the template failed to render ({said})",
                                  said) from None


def _run_with_deadline(fn: Callable[[], str], seconds: float) -> str:
    """Run fn() in this thread; if it is still running after `seconds`, a watchdog raises
    _Timeout inside it (PyThreadState_SetAsyncExc). A lock orders "finished" against "fired",
    and a pending exception is cleared if it was not delivered, so it can never escape later."""
    target = threading.get_ident()
    lock = threading.Lock()
    finished = threading.Event()
    fired = []

    def watchdog() -> None:
        if finished.wait(seconds):
            return
        with lock:
            if not finished.is_set():
                fired.append(True)
                _async_raise(target, _Timeout)

    thread = threading.Thread(target=watchdog, name="corral-template-watchdog", daemon=True)
    thread.start()
    try:
        try:
            result = fn()
        finally:
            with lock:
                finished.set()
        if fired:
            _async_raise(target, None)  # fired too late to land: take it back
        return result
    finally:
        if fired:
            _async_raise(target, None)


def _async_raise(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else ctypes.py_object())
