"""What every command shares: the error type and the core errors shown as one line."""

from __future__ import annotations


class CliError(Exception):
    """An error already phrased for the user; printed as one line, exit code `exit_code`."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def user_error_types() -> tuple[type[BaseException], ...]:
    """Core exceptions whose message is written for a person (printed without a traceback)."""
    types: list[type[BaseException]] = [OSError]
    for module, name in (
        ("app.core.gguf_info", "GGUFError"),
        ("app.core.engine", "EngineError"),
        ("app.core.templates", "TemplateError"),
        ("app.core.remote", "RemoteError"),
        ("app.core.library", "LibraryError"),
        ("app.core.statefile", "StateFileError"),  # a state file unusable (SettingsError too)
    ):
        try:
            mod = __import__(module, fromlist=[name])
        except ImportError:
            continue
        found = getattr(mod, name, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            types.append(found)
    return tuple(types)


def check_arg(flag: str, value: str | None) -> str | None:
    """`value` of a command-line option, unless it holds a byte that is not UTF-8 (CliError
    naming the option, before the text goes anywhere)."""
    from app.core.inputs import text_problem

    problem = text_problem(value, from_bytes=True) if isinstance(value, str) else None
    if problem:
        raise CliError(f"{flag}: the text {problem}", 2)
    return value
