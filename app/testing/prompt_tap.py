"""What a shipped command (`python -m app serve`, …) run as a child process sent its model:
the exact prompt text of each generation, for tests that compare it byte for byte.

    tap = PromptTap(tmp_path / "tap")
    env = dict(os.environ, PYTHONPATH=tap.python_path(os.environ.get("PYTHONPATH")))
    ... start `python -m app serve` with env, send it a request ...
    tap.prompts()        # ["<the rendered prompt>", …], one per generation, oldest first

How: the folder gets a `sitecustomize.py`, which Python imports in the child before anything
else (PYTHONPATH: children started with `python -I`, such as the llama.cpp runner, skip it). It
first loads the `sitecustomize` it hides (the test suite's network guard, tests/netguard), then
wraps `Engine.generate`, the one call through which every face hands a prompt to the runner,
so that it appends the prompt to a log before going on unchanged. Nothing else in the command
differs: its arguments, its parsing, its turn pipeline and its engine are the shipped ones.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import sys
from pathlib import Path

APP_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding this `app` package
LOG_NAME = "prompts.jsonl"


class PromptTap:
    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = self.folder / LOG_NAME
        (self.folder / "sitecustomize.py").write_text(
            "# Written by app.testing.prompt_tap: records the prompts this process sends its\n"
            "# model, after loading the sitecustomize this file hides.\n"
            "import sys\n"
            f"sys.path.insert(0, {APP_ROOT!r})\n"
            "from app.testing.prompt_tap import start\n"
            f"sys.path.remove({APP_ROOT!r})\n"
            f"start({str(self.folder)!r})\n", encoding="utf-8")

    def python_path(self, rest: str | None = None) -> str:
        """PYTHONPATH for the child: this folder first, then `rest` (the test run's own)."""
        return os.pathsep.join(filter(None, [str(self.folder), rest]))

    def prompts(self) -> list[str]:
        """Every prompt the tapped processes sent their model so far, oldest first."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]


def start(folder: str) -> None:
    """In the child, from the generated sitecustomize: chain, then tap."""
    _load_hidden_sitecustomize(folder)
    from app.core import engine

    log = Path(folder) / LOG_NAME
    generate = engine.Engine.generate

    @functools.wraps(generate)
    def recorded(self, prompt, *args, **kwargs):
        with open(log, "a", encoding="utf-8") as f:  # one line per prompt (JSON escapes \n)
            f.write(json.dumps(prompt) + "\n")
        return generate(self, prompt, *args, **kwargs)

    engine.Engine.generate = recorded


def _load_hidden_sitecustomize(folder: str) -> None:
    """The next `sitecustomize.py` on sys.path after this one's folder, run under another
    module name (the network guard installs itself when imported in a test's child)."""
    here = os.path.realpath(folder)
    for entry in sys.path:
        candidate = os.path.join(entry or ".", "sitecustomize.py")
        if os.path.realpath(entry or ".") != here and os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_hidden_sitecustomize", candidate)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return
