"""Every third-party package the app imports directly is declared in pyproject.toml (issue 16:
Pygments was used but not declared, h11 too): an undeclared one works only while another
dependency happens to pull it in, and breaks the day that one stops. app/testing (the generated
models and the local hub, for tests and bench/) may also use the `test` extra."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalized(re.split(r"[ <>=!~;\[]", dep, maxsplit=1)[0]) for dep in requirements}


def optional_imports(tree: ast.AST) -> set[int]:
    """ids of import nodes inside `try: … except ImportError` (a fallback, not a requirement)."""
    optional: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                for h in node.handlers):
            for part in (*node.body, *(n for h in node.handlers for n in h.body)):
                optional.update(id(n) for n in ast.walk(part))
    return optional


def imported_top_levels(folder: Path) -> dict[str, str]:
    """{top-level module: a file importing it} for every absolute import under `folder` that is
    not an optional one."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        optional = optional_imports(tree)
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def undeclared(folder: Path, declared: set[str], skip: Path | None = None) -> list[str]:
    providers = importlib.metadata.packages_distributions()
    missing = []
    for module, where in imported_top_levels(folder).items():
        if module == "app" or module in sys.stdlib_module_names:
            continue
        if skip is not None and all(Path(w).is_relative_to(skip.relative_to(ROOT))
                                    for w in [where]):
            continue
        dists = {normalized(d) for d in providers.get(module, [])}
        if not dists:
            missing.append(f"{module} ({where}): no installed distribution provides it")
        elif not dists & declared:
            missing.append(f"{module} ({where}) from {sorted(dists)}")
    return missing


def test_every_third_party_import_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = requirement_names(project["dependencies"])
    test_extra = requirement_names(project["optional-dependencies"]["test"])
    app_missing = [m for m in undeclared(ROOT / "app", runtime) if "app/testing/" not in m]
    testing_missing = undeclared(ROOT / "app" / "testing", runtime | test_extra)
    assert not app_missing, "imported but not in pyproject's dependencies: " + "; ".join(app_missing)
    assert not testing_missing, ("app/testing imports what neither the dependencies nor the test "
                                 "extra declare: " + "; ".join(testing_missing))
