"""How Corral starts a Python child process of its own (the llama.cpp runner, …): isolated.

`python -m app.core.runner` puts the current working directory first on `sys.path`, so a
`queue.py` in the folder a user ran `corral` from was imported into the runner. A child runs
with `-I` (no working directory or script folder on the path, no PYTHON* variables, no user
site-packages), imports `app` from the folder this code was loaded from, and starts in a fixed
working directory. Secrets in the environment (API keys, hub tokens) are not passed on: a child
has no use for them. A frozen app (PyInstaller) has no interpreter to pass `-I` to; it runs
itself with a flag that `app.cli.main` dispatches before anything else, and its frozen importer
never looks at the working directory.

    proc = start_child("app.core.runner", "--corral-runner", stdin=PIPE, stdout=PIPE, …)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

# The folder that holds the `app` package this process runs.
APP_ROOT = str(Path(__file__).resolve().parents[2])
_SECRET = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY|_KEY$|^KEY$", re.IGNORECASE)


def child_command(module: str, frozen_flag: str) -> list[str]:
    """The command that runs `module.main()` (its return value is the exit code)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, frozen_flag]
    code = (f"import sys; sys.path.insert(0, sys.argv[1]); from {module} import main; "
            f"sys.exit(main())")
    return [sys.executable, "-I", "-c", code, APP_ROOT]


def child_cwd() -> str:
    """A working directory that is the same whatever folder `corral` was started from."""
    return os.path.dirname(sys.executable) if getattr(sys, "frozen", False) else APP_ROOT


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without its secrets, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not _SECRET.search(k)}
    env.update(extra)
    return env


def start_child(module: str, frozen_flag: str, *, env: dict[str, str] | None = None,
                **popen: Any) -> subprocess.Popen:
    """Start `module.main()` isolated, with `env` added to child_env(); no console window
    on Windows. Other keyword arguments go to Popen (pipes)."""
    if sys.platform == "win32":
        popen.setdefault("creationflags", subprocess.CREATE_NO_WINDOW)  # type: ignore[attr-defined]
    return subprocess.Popen(child_command(module, frozen_flag), cwd=child_cwd(),
                            env=child_env(**(env or {})), **popen)
