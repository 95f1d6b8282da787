"""A turn's prompt without an engine: the template it would use and its rendering, not fitted
to a context (nothing is tokenized). `corral prompt` shows this; the window's inspector shows
the draft's; a running turn renders through the same two calls, then fits (local.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core.templates import Detection, RenderedPrompt, TemplateError, TemplateRegistry, \
    render
from app.core.turns.model import TurnRequest
from app.core.turns.template_choice import TemplateChoice, choose_template


def template_for(request: TurnRequest, *, info: Any = None, library: Any = None,
                 registry: TemplateRegistry | None = None) -> TemplateChoice:
    """The template `request` is rendered with. `info`: the model's GGUF header (read from its
    file when None); a request whose model has no file (only a template named) gets the
    conversation's choice from the registry, as it is."""
    registry = registry or TemplateRegistry()
    model, chosen = request.model, request.options.template
    if model.path is None and info is None:
        if not chosen:
            raise TemplateError("no model and no template: name one")
        template = registry.get(chosen)
        said = Detection(template.id, "user", "chosen for this conversation")
        return TemplateChoice(template, said, said, template.name, True, said.detail)
    if info is None:
        from app.core import gguf_info
        info = gguf_info.inspect(Path(model.path))
    settings = None
    if model.in_library:
        if library is None:
            from app.core.library import Library
            library = Library()
        settings = library.model_settings(model.id)
    return choose_template(info, model_id=model.id, path=model.path, model_settings=settings,
                           conversation_choice=chosen, registry=registry)


def render_turn(request: TurnRequest, choice: TemplateChoice) -> RenderedPrompt:
    """The whole conversation rendered with `choice` (nothing left out)."""
    options = request.options
    return render(choice.template, request.messages, system=options.system,
                  add_generation_prompt=options.add_generation_prompt)
