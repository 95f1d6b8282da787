"""The conversation's template, a part of the chat session (session.py) with the session as
its one dependency: which template the next turn uses and why (the core's choose_template,
cached per model and conversation choice), what the template picker and the inspector show,
the conversation's own choice, and — a separate, explicit action — making it the model's
default for every chat that does not choose one."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from app.core import turns
from app.core.gguf_info import GGUFError
from app.core.library import LibraryError
from app.core.settings import SettingsError
from app.core.templates import GGUF_ID, PromptTemplate, TemplateError
from app.core.turns import TemplateChoice

if TYPE_CHECKING:
    from app.gui.chat.model_choices import ModelEntry
    from app.gui.chat.session import ChatSession


# What choosing the next turn's template may raise (Templates.choice): the template, or the
# model's file, which may have been moved or deleted since the library was read (GGUFError).
CHOICE_ERRORS = (TemplateError, GGUFError, OSError, ValueError)


@dataclass(frozen=True)
class TemplatesView:
    """What the template picker and the inspector's head show for the open conversation."""

    auto_label: str
    auto_tip: str
    chat: tuple[tuple[str, str], ...]       # (id, name) of the chat templates
    presets: tuple[tuple[str, str], ...]    # completion presets
    current: str | None                     # the conversation's own choice (None: automatic)
    name: str                               # the template used, and why
    reason: str
    system: str | None = None
    system_default: str = ""
    remote: bool = False                    # a server's model: the server's own template
    model_default: str | None = None        # the model's saved template (None: automatic)


class Templates(QObject):
    def __init__(self, session: "ChatSession") -> None:
        super().__init__(session)
        self.session = session
        self._choices: dict[tuple[str, str | None], TemplateChoice] = {}

    def clear(self) -> None:
        """Forget the choices made (the library, a model's settings or a choice changed)."""
        self._choices.clear()

    def choice(self, entry: "ModelEntry") -> TemplateChoice | None:
        """The template of the next turn on a local model (None: a server renders its own).
        CHOICE_ERRORS."""
        s = self.session
        if entry.remote:
            return None
        key = (entry.id, s.conv.template_id if s.conv else None)
        if key not in self._choices:
            self._choices[key] = turns.choose_template(
                s.models.info(entry), model_id=entry.id, path=entry.path,
                model_settings=s.model_settings(entry),
                conversation_choice=key[1], registry=s.registry)
        return self._choices[key]

    def preset(self) -> PromptTemplate | None:
        """The completion preset the open conversation names, if any."""
        s = self.session
        tid = s.conv.template_id if s.conv else None
        if tid and tid != GGUF_ID:
            try:
                template = s.registry.get(tid)
            except TemplateError:
                return None
            return template if template.kind == "completion" else None
        return None

    def show(self, entry: "ModelEntry | None" = None) -> None:
        s = self.session
        entry = entry if entry is not None else s.model()
        conv = s.conv
        assert conv is not None
        chat = [(t.id, t.name) for t in s.registry.all() if t.kind == "chat"]
        presets = tuple((t.id, t.name) for t in s.registry.all() if t.kind == "completion")
        view = TemplatesView("Template: automatic", "Choose a model first", tuple(chat),
                             presets, conv.template_id, "(none)", "Choose a model first")
        if entry is not None and entry.remote:
            view = replace(view, auto_label="Template: the server's", remote=True,
                           auto_tip=f"{entry.group} applies its own chat template",
                           name="the server's own",
                           reason=f"{entry.group} renders the prompt with its own template",
                           system=conv.system_prompt)
        elif entry is not None:
            try:
                if s.models.info(entry).chat_template:
                    chat.insert(0, (GGUF_ID, "The model's own template (from the GGUF file)"))
                choice = self.choice(entry)
                assert choice is not None
                name, reason = choice.template.name, choice.reason
                if conv.mode == "completion":
                    preset = self.preset()
                    name = preset.name if preset else "none (completion mode)"
                    reason = ("Completion mode sends the editor's text as it is; a preset gives "
                              "the starting text and the stop strings.")
                settings = s.model_settings(entry)
                view = replace(view, auto_label=f"Auto: {choice.auto_name}",
                               auto_tip=choice.auto.detail, chat=tuple(chat), name=name,
                               reason=reason, system=conv.system_prompt,
                               system_default=choice.template.default_system,
                               model_default=settings.template if settings else None)
            except CHOICE_ERRORS as exc:
                view = replace(view, name="(none)", reason=str(exc))
        s.templatesShown.emit(view)

    def choose(self, template_id: str | None) -> None:
        """This conversation's template only: the model's default is `make_default`."""
        s = self.session
        if s.conv is None:
            return
        s.update(template_id=template_id)
        self.clear()
        self.show()
        s.next_prompt.schedule()

    def make_default(self) -> None:
        """The explicit action: the open conversation's template becomes its model's default
        for every chat that does not choose one (None: back to automatic detection)."""
        s = self.session
        entry, conv = s.model(), s.conv
        if entry is None or entry.remote or conv is None:
            return
        try:
            turns.make_default_template(s.library, entry.id, conv.template_id, s.registry)
        except (TemplateError, LibraryError, SettingsError, OSError) as exc:
            return s.say(f"Could not make it the default of {entry.id}: {exc}")
        self.clear()
        self.show(entry)
        what = conv.template_id or "automatic detection"
        s.say(f"{what} is now the template of {entry.id} for every chat that does not choose "
              f"one.", "info")

    def choose_preset(self, template_id: str) -> None:
        s = self.session
        s.update(template_id=template_id or None)
        preset = self.preset()
        if preset is not None and preset.preset:
            s.completionText.emit(preset.preset)
        self.show()
        s.next_prompt.schedule()
