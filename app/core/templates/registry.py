"""All templates Corral knows: the built-ins (resources/templates/*.json, read-only) and the
user's own (one JSON file each in the user templates folder), with create/edit/duplicate/delete.

Every save renders a sample conversation first (an invalid template never reaches disk) and is
atomic (a temporary file, then os.replace), so a crash never leaves half a template behind.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from app.core.settings import write_text_atomic
from app.core.templates.model import GGUF_ID, ID_PATTERN, PromptTemplate, TemplateError, \
    template_from_dict
from app.core.templates.render import validate


def builtin_dir() -> Path:
    from app.core.resources import resource_path
    return resource_path("templates")


def user_dir() -> Path:
    from app.core.paths import get_paths
    return get_paths().templates


@lru_cache(maxsize=4)
def _load_builtins(folder: str) -> tuple[PromptTemplate, ...]:
    # Shipped files never change while Corral runs; read them once. A broken one is a
    # packaging bug, so it fails loudly instead of being skipped.
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        template = _read(path, origin="builtin")
        if template.id != path.stem:
            raise TemplateError(f"{path.name}: the id {template.id!r} must match the file name")
        found.append(template)
    if not found:
        raise TemplateError(f"no built-in templates in {folder}")
    return tuple(found)


def _read(path: Path, *, origin: str) -> PromptTemplate:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"{path.name}: cannot be read ({exc.strerror})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TemplateError(f"{path.name}: not valid JSON ({exc})") from None
    return template_from_dict(data, origin=origin, where=path.name)


class TemplateRegistry:
    """The templates as they are on disk now. Cheap to build; build one when you need it."""

    def __init__(self, builtin_folder: Path | None = None, user_folder: Path | None = None):
        self.builtin_folder = Path(builtin_folder or builtin_dir())
        self.user_folder = Path(user_folder or user_dir())
        self._builtins = {t.id: t for t in _load_builtins(str(self.builtin_folder))}
        self._user: dict[str, PromptTemplate] = {}
        # User files that could not be loaded: shown to the user, not silently dropped.
        self.problems: list[str] = []
        if self.user_folder.is_dir():
            for path in sorted(self.user_folder.glob("*.json")):
                try:
                    template = _read(path, origin="user")
                except TemplateError as exc:
                    self.problems.append(str(exc))
                    continue
                if template.id != path.stem:
                    self.problems.append(f"{path.name}: the id {template.id!r} must match "
                                         f"the file name; skipped")
                elif template.id in self._builtins:
                    self.problems.append(f"{path.name}: {template.id!r} is a built-in "
                                         f"template's id; skipped")
                else:
                    self._user[template.id] = template

    def all(self) -> list[PromptTemplate]:
        return [*self._builtins.values(), *self._user.values()]

    def ids(self) -> list[str]:
        return [t.id for t in self.all()]

    def get(self, template_id: str) -> PromptTemplate:
        template = self._builtins.get(template_id) or self._user.get(template_id)
        if template is None:
            raise TemplateError(f"no template {template_id!r}; known: {', '.join(self.ids())}")
        return template

    def is_builtin(self, template_id: str) -> bool:
        return template_id in self._builtins

    def create(self, template: PromptTemplate) -> PromptTemplate:
        """Save a new user template; its id must be free."""
        self._check_id(template.id)
        if template.id in self._builtins or template.id in self._user:
            raise TemplateError(f"a template {template.id!r} already exists; choose another id")
        return self._save(template)

    def update(self, template: PromptTemplate) -> PromptTemplate:
        """Replace an existing user template (built-ins are read-only: duplicate one)."""
        if template.id in self._builtins:
            raise TemplateError(f"{template.id!r} is built in and cannot be changed; "
                                f"duplicate it and edit the copy")
        if template.id not in self._user:
            raise TemplateError(f"no user template {template.id!r} to edit")
        return self._save(template)

    def duplicate(self, source_id: str, new_id: str, name: str | None = None) -> PromptTemplate:
        """Copy any template (built-in or user) as a new user template."""
        source = self.get(source_id)
        copy = replace(source, id=new_id, name=name or f"{source.name} (copy)", origin="user",
                       notes=(f"Copied from {source_id!r}. " + source.notes).strip())
        return self.create(copy)

    def delete(self, template_id: str) -> None:
        if template_id in self._builtins:
            raise TemplateError(f"{template_id!r} is built in and cannot be deleted")
        if template_id not in self._user:
            raise TemplateError(f"no user template {template_id!r} to delete")
        (self.user_folder / f"{template_id}.json").unlink()
        del self._user[template_id]

    @staticmethod
    def _check_id(template_id: str) -> None:
        if not ID_PATTERN.match(template_id) or template_id == GGUF_ID:
            raise TemplateError(f"id {template_id!r}: use lowercase letters, digits, '.', '_' or "
                                f"'-' (at most 63 characters), and not {GGUF_ID!r}")

    def _save(self, template: PromptTemplate) -> PromptTemplate:
        template = replace(template, origin="user")
        validate(template)  # raises TemplateError: nothing is written
        self.user_folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(template.to_dict(), indent=2, ensure_ascii=False) + "\n"
        write_text_atomic(self.user_folder / f"{template.id}.json", text)
        self._user[template.id] = template
        return template
