"""What a conversation's next reply needs, worked out from the core (no widgets here): the
template and why, sampling and load settings from the knobs, the messages to send."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core import gguf_info, hardware
from app.core.chats import Conversation, Message
from app.core.engine import LoadSettings, SamplingParams
from app.core.library import Library, LocalModel
from app.core.settings import SAMPLING_KEYS, ModelSettings, Settings
from app.core.templates import (GGUF_ID, Detection, PromptTemplate, TemplateError,
                                TemplateRegistry, gguf_template, template_for_model)

_ENGINE = SamplingParams()


def default_params(settings: Settings, model_settings: ModelSettings | None = None,
                   n_ctx_train: int | None = None) -> dict[str, Any]:
    """The knobs' defaults: llama.cpp's sampling defaults, the app's threads and context size,
    then what was remembered for the model."""
    context = settings.context_size
    if n_ctx_train:
        context = min(context, n_ctx_train)
    out: dict[str, Any] = {
        "max_tokens": _ENGINE.max_tokens, "temperature": _ENGINE.temperature,
        "top_k": _ENGINE.top_k, "top_p": _ENGINE.top_p, "min_p": _ENGINE.min_p,
        "repeat_penalty": _ENGINE.repeat_penalty, "repeat_last_n": _ENGINE.repeat_last_n,
        "seed": -1, "threads": settings.threads or hardware.default_threads(), "context": context,
    }
    if model_settings is not None:
        out.update({k: v for k, v in model_settings.sampling.items() if k in out})
        if model_settings.context:
            out["context"] = model_settings.context
    return out


def remembered_changes(params: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """update_model_settings(**changes) that remember `params` for a model: the sampling keys
    the model settings know (a key equal to the app default is removed), and the context."""
    sampling: dict[str, Any] = {}
    for key in SAMPLING_KEYS:
        if key not in params:
            continue
        value = params[key]
        if key == "seed" and value == -1:
            value = None
        sampling[key] = None if value == base.get(key) else value
    context = params.get("context")
    return {"sampling": sampling,
            "context": None if context in (None, base.get("context")) else context}


def sampling_from(params: dict[str, Any]) -> SamplingParams:
    seed = params.get("seed", -1)
    return SamplingParams(
        max_tokens=int(params.get("max_tokens", _ENGINE.max_tokens)),
        temperature=float(params.get("temperature", _ENGINE.temperature)),
        top_k=int(params.get("top_k", _ENGINE.top_k)),
        top_p=float(params.get("top_p", _ENGINE.top_p)),
        min_p=float(params.get("min_p", _ENGINE.min_p)),
        repeat_penalty=float(params.get("repeat_penalty", _ENGINE.repeat_penalty)),
        repeat_last_n=int(params.get("repeat_last_n", _ENGINE.repeat_last_n)),
        seed=None if seed is None or seed < 0 else int(seed))


def load_settings_for(settings: Settings, model_settings: ModelSettings,
                      params: dict[str, Any]) -> LoadSettings:
    layers = model_settings.gpu_layers if model_settings.gpu_layers is not None \
        else settings.gpu_layers
    return LoadSettings(backend=settings.backend, gpu_layers=None if layers == -1 else layers,
                        threads=int(params.get("threads") or 0) or None,
                        n_ctx=int(params.get("context") or 0) or None)


def history(messages: list[Message]) -> list[dict[str, str]]:
    """The messages a prompt is made of: failed and empty replies are left out."""
    return [{"role": m.role, "content": m.content} for m in messages
            if m.state != "error" and (m.content or m.role == "user")]


class ModelInfos:
    """GGUF headers (with BOS/EOS and the chat template), read once per file until `clear()`
    (the screen clears it when the library changes)."""

    def __init__(self) -> None:
        self._cache: dict[str, gguf_info.ModelInfo] = {}

    def get(self, path: Path) -> gguf_info.ModelInfo:
        key = str(path)
        if key not in self._cache:
            self._cache[key] = gguf_info.inspect(path)
        return self._cache[key]

    def clear(self) -> None:
        self._cache.clear()


@dataclass(frozen=True)
class TemplateChoice:
    template: PromptTemplate
    auto: Detection           # what automatic choice would give (shown on the "Auto" item)
    auto_name: str
    explicit: bool            # the conversation names its template
    rule: str                 # a sentence: why this template


def choose_template(registry: TemplateRegistry, library: Library, model: LocalModel,
                    info: gguf_info.ModelInfo, conversation_choice: str | None) -> TemplateChoice:
    """The conversation's template if it names one, else the model's: the user's setting or
    the catalog's, else detection (GGUF template → name rules → raw)."""
    chosen, source = library.template_for(model)
    auto_template, auto = template_for_model(info, user_choice=chosen, registry=registry)
    if source == "catalog":
        auto = Detection(auto.template_id, "catalog",
                         f"the catalog entry for {model.path.name} uses {chosen!r}")
    elif source == "setting":
        auto = Detection(auto.template_id, "user", f"you chose {chosen!r} for {model.id}")
    if not conversation_choice:
        return TemplateChoice(auto_template, auto, auto_template.name, False,
                              f"Automatic: {auto.detail}")
    if conversation_choice == GGUF_ID:
        if not info.chat_template:
            raise TemplateError(f"{model.path.name} carries no chat template of its own")
        template = gguf_template(info.chat_template, bos_token=info.bos_token,
                                 eos_token=info.eos_token, model_name=info.name)
    else:
        template = registry.get(conversation_choice).with_tokens(info.bos_token, info.eos_token)
    return TemplateChoice(template, auto, auto_template.name, True,
                          f"Chosen for this conversation (automatic would be "
                          f"{auto_template.name}: {auto.detail})")


def completion_title(text: str, preset: str | None) -> str | None:
    """A completion's title: its first line that is not part of the preset."""
    skip = {ln.strip() for ln in (preset or "").splitlines()}
    for line in text.splitlines():
        if line.strip() and line.strip() not in skip:
            return line.strip()
    return None


def conversation_model(library_models: list[LocalModel], conv: Conversation | None
                       ) -> LocalModel | None:
    if conv is None or not conv.model_id:
        return None
    for m in library_models:
        if m.id == conv.model_id:
            return m
    if conv.model_path:
        for m in library_models:
            if str(m.path) == conv.model_path:
                return m
    return None
