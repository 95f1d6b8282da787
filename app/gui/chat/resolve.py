"""What a conversation's next reply needs, from the core's turn pipeline (app.core.turns): the
knobs' defaults, the template and why, the messages to send, the request. No widgets here, and
no logic of its own: the screen's adapter to the pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.core import gguf_info, turns
from app.core.chats import Conversation, Message
from app.core.engine import LoadSettings
from app.core.library import Library, LocalModel
from app.core.settings import ModelSettings, Settings
from app.core.templates import TemplateRegistry
from app.core.turns import TemplateChoice, TurnOptions, TurnRequest

default_params = turns.default_knobs
remembered_changes = turns.remembered_changes


def load_settings_for(settings: Settings, model_settings: ModelSettings, params: dict[str, Any],
                      n_ctx_train: int | None = None) -> LoadSettings:
    return turns.load_settings_for(settings, model_settings, params, n_ctx_train)


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


def choose_template(registry: TemplateRegistry, library: Library, model: LocalModel,
                    info: gguf_info.ModelInfo, conversation_choice: str | None) -> TemplateChoice:
    """The conversation's template if it names one, else the model's (the pipeline's rule)."""
    return turns.choose_template(info, model_id=model.id, path=model.path,
                                 model_settings=library.model_settings(model.id),
                                 conversation_choice=conversation_choice, registry=registry)


def chat_request(model: LocalModel, conv: Conversation, messages: list[dict[str, str]],
                 params: dict[str, Any], *, prompt: str | None = None,
                 add_bos: bool = True) -> TurnRequest:
    """A chat turn of `conv` (its template choice, system prompt, stop strings and knobs);
    `prompt`: the inspector's edited text, sent as it is."""
    stops = conv.options.get("stop")
    return TurnRequest(turns.local_ref(model), messages=tuple(messages), prompt=prompt,
                       add_bos=add_bos, options=TurnOptions(
                           template=conv.template_id, system=conv.system_prompt,
                           stop=tuple(stops) if stops is not None else None,
                           overrides=params))


def completion_request(model: LocalModel, text: str, params: dict[str, Any],
                       stops: list[str] | None = None) -> TurnRequest:
    """The completion editor's text, sent as it is."""
    return TurnRequest(turns.local_ref(model), prompt=text, options=TurnOptions(
        stop=tuple(stops) if stops is not None else None, overrides=params))


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
