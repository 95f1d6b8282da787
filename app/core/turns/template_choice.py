"""Which template a turn is rendered with, and why.

Order: the conversation's own choice (it applies to that conversation only) → the model's
setting (the user's choice for that model, or the catalog's for its file) → detection from the
GGUF (its own template, then rules on its names, then raw completion). Making a template the
model's default is a separate, explicit call (`make_default_template`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.settings import ModelSettings
from app.core.templates import (GGUF_ID, Detection, PromptTemplate, TemplateError,
                                TemplateRegistry, gguf_template, template_for_model)


@dataclass(frozen=True)
class TemplateChoice:
    template: PromptTemplate
    detection: Detection      # what chose it: rule "user" (conversation or model setting),
    #                           "catalog", "gguf", "name" or "fallback", and a sentence
    auto: Detection           # what the automatic choice would give (the "Auto" item)
    auto_name: str
    explicit: bool            # the conversation names its template
    reason: str               # one sentence for people: why this template

    @property
    def rule(self) -> str:  # the window's older name for `reason`
        return self.reason


def model_template_setting(model_settings: ModelSettings | None, path: Path | None
                           ) -> tuple[str | None, str]:
    """(template id, where it came from): the user's setting for the model, else the catalog's
    for this file name, else (None, "auto") — left to detection from the GGUF."""
    if model_settings is not None and model_settings.template:
        return model_settings.template, "setting"
    if path is not None:
        from app.core.catalog import shipped_catalog
        catalog = shipped_catalog()
        entry = catalog.entry_for_filename(Path(path).name) if catalog is not None else None
        if entry is not None:
            return entry.template, "catalog"
    return None, "auto"


def choose_template(info: Any, *, model_id: str, path: Path | None,
                    model_settings: ModelSettings | None, conversation_choice: str | None,
                    registry: TemplateRegistry | None = None) -> TemplateChoice:
    """The template for a turn on a model whose GGUF header is `info`
    (app.core.gguf_info.ModelInfo): see the module's doc for the order."""
    registry = registry or TemplateRegistry()
    chosen, source = model_template_setting(model_settings, path)
    auto_template, auto = template_for_model(info, user_choice=chosen, registry=registry)
    name = Path(path).name if path is not None else model_id
    if source == "catalog":
        auto = Detection(auto.template_id, "catalog", f"the catalog entry for {name} uses "
                                                      f"{chosen!r}")
    elif source == "setting":
        auto = Detection(auto.template_id, "user", f"you chose {chosen!r} for {model_id}")
    if not conversation_choice:
        return TemplateChoice(auto_template, auto, auto, auto_template.name, False,
                              f"Automatic: {auto.detail}")
    if conversation_choice == GGUF_ID:
        if not info.chat_template:
            raise TemplateError(f"{name} carries no chat template of its own")
        template = gguf_template(info.chat_template, bos_token=info.bos_token,
                                 eos_token=info.eos_token, model_name=info.name)
    else:
        template = registry.get(conversation_choice).with_tokens(info.bos_token,
                                                                 info.eos_token)
    detection = Detection(template.id, "user", "chosen for this conversation")
    return TemplateChoice(template, detection, auto, auto_template.name, True,
                          f"Chosen for this conversation (automatic would be "
                          f"{auto_template.name}: {auto.detail})")


def make_default_template(library: Any, model_id: str, template_id: str | None,
                          registry: TemplateRegistry | None = None) -> ModelSettings:
    """Make `template_id` the model's own template (None: back to automatic) for every
    conversation that does not choose one: the explicit action, never a side effect of a
    conversation's choice. TemplateError for a template that does not exist."""
    if template_id and template_id != GGUF_ID:
        (registry or TemplateRegistry()).get(template_id)
    return library.update_model_settings(model_id, template=template_id)
