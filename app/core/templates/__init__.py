"""Prompt templates: render each model's conversation exactly as the model was trained to read it.

    render(template, messages, system=None, add_generation_prompt=True) -> RenderedPrompt
    detect(user_choice=, chat_template=, file_name=, repo_id=, general_name=) -> Detection
    template_for_model(info, user_choice=None) -> (PromptTemplate, Detection)
    fit_conversation(template, messages, n_ctx, count_tokens, reserve, max_token_bytes=)
        -> (RenderedPrompt, tokens); fit_to_context(...) -> RenderedPrompt; ContextOverflow
    TemplateRegistry(): all(), get(id), create/update/duplicate/delete for user templates

Modules: model (data + TemplateError), sandbox (Jinja for untrusted templates) with limits
(size checks), render_worker (the child process untrusted templates render in), system_role
(a system prompt for templates without one), render, detect, registry (files), fit (context).
No Qt here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.templates.detect import Detection, detect, repo_id_from_metadata
from app.core.templates.fit import ContextOverflow, fit_conversation, fit_to_context
from app.core.templates.model import (GGUF_ID, PromptTemplate, RenderedPrompt, TemplateError,
                                      TurnFormat, parse_messages)
from app.core.templates.registry import TemplateRegistry
from app.core.templates.render import gguf_template, render, render_many, takes_any_role, \
    validate

__all__ = [
    "ContextOverflow", "Detection", "GGUF_ID", "PromptTemplate", "RenderedPrompt", "TemplateError",
    "TemplateRegistry", "TurnFormat", "detect", "detect_for_model", "fit_conversation", "fit_to_context",
    "gguf_template", "parse_messages", "render", "render_many", "takes_any_role",
    "template_for_model", "validate",
]


def detect_for_model(info: Any, *, user_choice: str | None = None,
                     repo_id: str | None = None) -> Detection:
    """detect() fed from an app.core.gguf_info.ModelInfo (or anything with its fields)."""
    metadata = getattr(info, "metadata", None) or {}
    return detect(user_choice=user_choice, chat_template=info.chat_template,
                  file_name=Path(info.path).name,
                  repo_id=repo_id or repo_id_from_metadata(metadata),
                  general_name=info.name)


def template_for_model(info: Any, *, user_choice: str | None = None, repo_id: str | None = None,
                       registry: TemplateRegistry | None = None
                       ) -> tuple[PromptTemplate, Detection]:
    """The template to use for a model, with the model's own BOS/EOS strings, and why."""
    detection = detect_for_model(info, user_choice=user_choice, repo_id=repo_id)
    if detection.template_id == GGUF_ID:
        if not info.chat_template:
            raise TemplateError(f"{Path(info.path).name} carries no chat template of its own")
        return gguf_template(info.chat_template, bos_token=info.bos_token,
                             eos_token=info.eos_token, model_name=info.name), detection
    template = (registry or TemplateRegistry()).get(detection.template_id)
    return template.with_tokens(info.bos_token, info.eos_token), detection
