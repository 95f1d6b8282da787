"""Chat with the models of the library on the local engine.

`LocalBackend` is the local side of the `ChatBackend` protocol (app.core.remote): it loads the
asked-for model on demand (with the user's per-model settings), renders a conversation with the
model's template (the detected one, the user's choice, or one named per request), checks that
the prompt and the reply fit the context, and starts the engine. It is as thread-unsafe as the
engine it drives: one thread calls it (the server's worker, the GUI's engine thread); `stop()`
alone may be called from any thread.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence

from app.core.engine import Engine, Generation, LoadedModel, LoadSettings, SamplingParams
from app.core.library import Library, LibraryError, LocalModel
from app.core.settings import load_settings
from app.core.templates import (GGUF_ID, TemplateError, TemplateRegistry, render,
                                template_for_model)


class ContextOverflow(ValueError):
    """The prompt (plus the reply asked for) does not fit the model's context; the message
    gives the numbers, as OpenAI's does."""

    def __init__(self, prompt_tokens: int, max_tokens: int, n_ctx: int) -> None:
        self.prompt_tokens, self.max_tokens, self.n_ctx = prompt_tokens, max_tokens, n_ctx
        if max_tokens:
            msg = (f"This model's maximum context length is {n_ctx} tokens. However, you requested "
                   f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, "
                   f"{max_tokens} for the completion). Please reduce the prompt or max_tokens.")
        else:
            msg = (f"This model's maximum context length is {n_ctx} tokens. However, the prompt "
                   f"has {prompt_tokens} tokens, leaving no room for a completion. Please "
                   f"shorten the prompt.")
        super().__init__(msg)


def find_model(library: Library, model_id: str) -> LocalModel:
    """A usable model of the library by id, exact or in any case (LibraryError if none). Ids
    only, never paths: an API client cannot make the server open a file outside the library."""
    models = library.scan()
    for m in [m for m in models if m.id == model_id] or \
            [m for m in models if m.id.lower() == model_id.lower()]:
        if not m.ok:
            raise LibraryError(f"model {m.id!r} cannot be loaded: {m.error or m.status}")
        return m
    raise LibraryError(f"no model {model_id!r} in the library")


@dataclass(frozen=True)
class Prepared:
    """A prompt ready for the engine, already checked against the context."""

    model_id: str
    text: str
    add_bos: bool
    stop: tuple[str, ...]  # the template's stop strings (the caller's are added to the params)
    prompt_tokens: int     # BOS included
    n_ctx: int
    template_id: str | None  # None for a raw completion


class LocalBackend:
    """The library's models on one engine, one model loaded at a time."""

    def __init__(self, engine: Engine, library: Library, *, threads: int | None = None,
                 registry: TemplateRegistry | None = None) -> None:
        self.engine = engine
        self.library = library
        self.threads = threads
        self.registry = registry or TemplateRegistry()
        self._loaded: tuple[str, LoadSettings] | None = None  # (model id, settings) on the engine

    # ------------------------------------------------------------------ models
    def models(self) -> list[LocalModel]:
        """The models that can be loaded (invalid and missing files are left out)."""
        return [m for m in self.library.scan() if m.ok]

    def model(self, model_id: str) -> LocalModel:
        return find_model(self.library, model_id)

    def load_settings(self, model: LocalModel) -> LoadSettings:
        app = load_settings()
        mine = self.library.model_settings(model.id)
        layers = mine.gpu_layers if mine.gpu_layers is not None else app.gpu_layers
        trained = model.header.context_length if model.header else None
        n_ctx = mine.context or (min(app.context_size, trained) if trained else app.context_size)
        return LoadSettings(backend=app.backend, gpu_layers=None if layers == -1 else layers,
                            threads=self.threads or app.threads, n_ctx=n_ctx)

    def load(self, model: LocalModel,
             on_progress: Callable[[float], None] | None = None) -> LoadedModel:
        """Load `model` unless it is already loaded with the same settings."""
        settings = self.load_settings(model)
        if self.engine.model is not None and self._loaded == (model.id, settings):
            return self.engine.model
        self._loaded = None
        loaded = self.engine.load(model.path, settings, on_progress)
        self._loaded = (model.id, settings)
        return loaded

    @property
    def loaded_id(self) -> str | None:
        return self._loaded[0] if self._loaded and self.engine.model is not None else None

    def sampling(self, model: LocalModel, overrides: Mapping[str, Any]) -> SamplingParams:
        """The engine's defaults, then the user's settings for this model, then `overrides`
        (keys of SamplingParams; None values are ignored)."""
        base = {k: v for k, v in self.library.model_settings(model.id).sampling.items()
                if k in SamplingParams.__dataclass_fields__}
        base.update({k: v for k, v in overrides.items() if v is not None})
        if "stop" in base:
            base["stop"] = tuple(base["stop"])
        return SamplingParams(**base)

    # ------------------------------------------------------------------ prompts
    def prepare_chat(self, model: LocalModel, messages: Sequence[Mapping[str, Any]], *,
                     max_tokens: int, template: str | None = None) -> Prepared:
        """Load the model, render the conversation with its template, check the context."""
        self.load(model)
        loaded = self.engine.model
        chosen = template or self.library.template_for(model)[0]
        if template and template != GGUF_ID:
            self.registry.get(template)  # TemplateError when there is no such template
        tpl, _ = template_for_model(loaded.info, user_choice=chosen, registry=self.registry)
        rendered = render(tpl, messages)
        return self._check(model, rendered.text, rendered.add_bos, tuple(rendered.stop),
                           max_tokens, tpl.id)

    def prepare_completion(self, model: LocalModel, prompt: str, *, max_tokens: int) -> Prepared:
        """Load the model; the prompt is sent as it is (BOS added), checked against the context."""
        self.load(model)
        return self._check(model, prompt, True, (), max_tokens, None)

    def _check(self, model: LocalModel, text: str, add_bos: bool, stop: tuple[str, ...],
               max_tokens: int, template_id: str | None) -> Prepared:
        if not text:
            raise TemplateError("the prompt is empty")
        n_ctx = self.engine.model.n_ctx
        n_prompt = self.engine.count_tokens(text) + (1 if add_bos else 0)
        if n_prompt >= n_ctx or (max_tokens and n_prompt + max_tokens > n_ctx):
            raise ContextOverflow(n_prompt, max_tokens, n_ctx)
        return Prepared(model.id, text, add_bos, stop, n_prompt, n_ctx, template_id)

    def generate(self, prepared: Prepared, params: SamplingParams) -> Generation:
        """Start generating; the template's stop strings are added to the caller's."""
        stop = tuple(params.stop) + tuple(s for s in prepared.stop if s not in params.stop)
        return self.engine.generate(prepared.text, replace(params, stop=stop),
                                    add_bos=prepared.add_bos)

    # ------------------------------------------------------------------ ChatBackend
    def chat(self, model_id: str, messages: Sequence[Mapping[str, Any]],
             params: SamplingParams = SamplingParams(), *,
             template: str | None = None) -> Generation:
        model = self.model(model_id)
        return self.generate(self.prepare_chat(model, messages, max_tokens=params.max_tokens,
                                               template=template), params)

    def complete(self, model_id: str, prompt: str,
                 params: SamplingParams = SamplingParams()) -> Generation:
        model = self.model(model_id)
        return self.generate(self.prepare_completion(model, prompt, max_tokens=params.max_tokens),
                             params)

    def stop(self) -> None:
        self.engine.stop()

    def close(self) -> None:
        self.engine.close()
        self._loaded = None
