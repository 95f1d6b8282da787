"""Turns on this machine's engine: `LocalBackend` loads the model a turn names (with the app's
and the model's settings), chooses its template, renders the conversation and fits it into the
context, then starts the engine.

As thread-unsafe as the engine it drives: one thread calls it (the window's engine thread,
the server's worker, the CLI's main thread); `stop()` alone may come from any thread.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

from app.core import gguf_info
from app.core.engine import Engine, EngineError, Generation, LoadedModel, LoadSettings, \
    SamplingParams
from app.core.settings import ModelSettings, Settings, current_settings
from app.core.templates import (ContextOverflow, RenderedPrompt, TemplateError,
                                TemplateRegistry, fit_conversation)
from app.core.templates.fit import kept_messages, least_tokens, utf8_len
from app.core.turns import knobs
from app.core.turns.model import (REFUSE, ModelRef, PreparedTurn,
                                  TurnListener, TurnRequest, TurnStopped)
from app.core.turns.preview import render_turn
from app.core.turns.template_choice import TemplateChoice, choose_template

RAW_ID = "raw"  # what an exact prompt is rendered with: nothing


def overflow(prompt_tokens: int, max_tokens: int, n_ctx: int, exact: bool = True
             ) -> ContextOverflow:
    """A prompt (plus the reply asked for) that does not fit the context, in OpenAI's words."""
    least = "" if exact else "at least "
    if max_tokens:
        msg = (f"This model's maximum context length is {n_ctx} tokens. However, you requested "
               f"{least}{prompt_tokens + max_tokens} tokens ({least}{prompt_tokens} in the "
               f"prompt, {max_tokens} for the completion). Please reduce the prompt or "
               f"max_tokens.")
    else:
        msg = (f"This model's maximum context length is {n_ctx} tokens. However, the prompt "
               f"has {least}{prompt_tokens} tokens, leaving no room for a completion. Please "
               f"shorten the prompt.")
    return ContextOverflow(msg, prompt_tokens=prompt_tokens, reserve=max_tokens, n_ctx=n_ctx,
                           exact=exact)


class LocalBackend:
    """The engine, one model loaded at a time. `settings`: the app settings (None: read at
    each turn); `face_overrides`: knobs a face sets for all its turns (beneath each
    request's), e.g. `corral serve --threads`."""

    def __init__(self, engine: Engine | None = None, library: Any = None, *,
                 registry: TemplateRegistry | None = None, settings: Settings | None = None,
                 face_overrides: Mapping[str, Any] | None = None) -> None:
        self.engine = engine or Engine()
        self._library = library
        self.registry = registry
        self.settings = settings
        self.face_overrides = dict(face_overrides or {})
        self._loaded: tuple[Path, LoadSettings] | None = None
        self._loaded_id: str | None = None

    @property
    def library(self):
        if self._library is None:
            from app.core.library import Library
            self._library = Library()
        return self._library

    # ------------------------------------------------------------------ settings
    def app_settings(self) -> Settings:
        return self.settings if self.settings is not None else current_settings()

    def model_settings(self, model: ModelRef) -> ModelSettings | None:
        return self.library.model_settings(model.id) if model.in_library else None

    def _overrides(self, request_overrides: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.face_overrides, **{k: v for k, v in request_overrides.items()
                                         if v is not None}}

    def load_settings(self, model: ModelRef, overrides: Mapping[str, Any] | None = None
                      ) -> LoadSettings:
        return knobs.load_settings_for(self.app_settings(), self.model_settings(model),
                                       self._overrides(overrides or {}), model.n_ctx_train)

    # ------------------------------------------------------------------ loading
    def load(self, model: ModelRef, settings: LoadSettings | None = None, *,
             listener: TurnListener | None = None,
             check: Callable[[], None] | None = None) -> LoadedModel:
        """Load `model` unless it is loaded already with the same settings. `check()` is
        called before and while loading: when it raises TurnStopped the load is cancelled
        (listener.load_failed says so) and TurnStopped goes on up."""
        if model.remote or model.path is None:
            raise EngineError(f"{model.id} is not a model on this machine")
        settings = settings or self.load_settings(model)
        engine, path = self.engine, Path(model.path)
        if engine.model is not None and self._loaded == (path, settings):
            self._loaded_id = model.id
            return engine.model
        listener = listener or TurnListener()
        check = check or (lambda: None)
        stopped = []

        def progress(value: float) -> None:
            listener.load_progress(value)
            try:
                check()
            except TurnStopped:  # a stop while loading: llama.cpp's progress callback ends it
                stopped.append(True)
                engine.stop()

        listener.load_started(path)
        try:
            engine.gpu_support()  # the runner past its llama.cpp import
            try:
                check()
            except TurnStopped:
                stopped.append(True)
                raise EngineError(f"Loading {path.name} was cancelled") from None
            self._loaded = self._loaded_id = None
            loaded = engine.load(path, settings, progress)
        except EngineError as exc:
            listener.load_failed(str(exc))
            if stopped:
                raise TurnStopped() from None
            raise
        self._loaded, self._loaded_id = (path, settings), model.id
        listener.loaded(loaded)
        return loaded

    @property
    def loaded_id(self) -> str | None:
        return self._loaded_id if self.engine.model is not None else None

    def loaded_path(self) -> Path | None:
        return self._loaded[0] if self._loaded and self.engine.model is not None else None

    def unload(self) -> None:
        self.engine.unload()
        self._loaded = self._loaded_id = None

    # ------------------------------------------------------------------ preparing
    def template_choice(self, model: ModelRef, info: gguf_info.ModelInfo,
                        conversation_choice: str | None) -> TemplateChoice:
        return choose_template(info, model_id=model.id, path=model.path,
                               model_settings=self.model_settings(model),
                               conversation_choice=conversation_choice,
                               registry=self.registry or TemplateRegistry())

    def prepare(self, request: TurnRequest, *, listener: TurnListener | None = None,
                check: Callable[[], None] | None = None, load: bool = True) -> PreparedTurn:
        """Load (unless `load` is False: then the model must be loaded already), choose the
        template, render and fit. Raises TemplateError (ContextOverflow), SamplingError,
        EngineError, TurnStopped."""
        check = check or (lambda: None)
        model, options = request.model, request.options
        overrides = self._overrides(options.overrides)
        params = knobs.sampling_for(self.model_settings(model), overrides)
        if load:
            loaded = self.load(model, self.load_settings(model, options.overrides),
                               listener=listener, check=check)
        else:
            loaded = self.engine.model
            if loaded is None or model.path is None or loaded.path != Path(model.path):
                raise EngineError(f"{model.id} is not loaded")
        check()
        n_ctx = loaded.n_ctx
        if options.fit == REFUSE:  # the reply asked for must fit beside the prompt
            reserve = max(params.max_tokens, 1)
        else:
            reserve = knobs.reserve_for(params, n_ctx)
        choice = None
        if request.prompt is not None:
            text, add_bos, template_id, notes = request.prompt, request.add_bos, RAW_ID, ()
            base_stop = options.stop or ()
            used = self._count_exact(text, add_bos, loaded, params, options.fit, check)
            rendered = RenderedPrompt(text, list(base_stop), add_bos, RAW_ID)
            messages: tuple = ()
        else:
            choice = self.template_choice(model, loaded.info, options.template)
            rendered, used = self._fit(request, choice, loaded, params, reserve, check)
            text, add_bos, notes = rendered.text, rendered.add_bos, rendered.notes
            template_id = choice.template.id
            base_stop = options.stop if options.stop is not None else tuple(rendered.stop)
            messages = tuple(kept_messages(request.messages, rendered.dropped_turns))
        if not text:
            raise TemplateError("the prompt is empty")
        stop = tuple(params.stop) + tuple(s for s in base_stop if s not in params.stop)
        room = max(1, n_ctx - used)
        sent = replace(params, stop=stop, max_tokens=min(params.max_tokens or room, room))
        return PreparedTurn(
            model=model, mode=request.mode,
            text=text, messages=messages, add_bos=add_bos, stop=stop, params=sent,
            load=self._loaded[1] if self._loaded else None, template=choice,
            template_id=template_id, dropped_turns=rendered.dropped_turns, prompt_tokens=used,
            n_ctx=n_ctx, reserve=reserve, notes=tuple(notes),
            requested_max_tokens=params.max_tokens)

    def _count_exact(self, text: str, add_bos: bool, loaded: LoadedModel,
                     params: SamplingParams, fit: str, check: Callable[[], None]) -> int:
        """The tokens of an exact prompt; ContextOverflow when it cannot fit, told from its
        bytes alone when it is far too long (it is never tokenized then)."""
        if not text:
            raise TemplateError("the prompt is empty")
        n_ctx, bos = loaded.n_ctx, 1 if add_bos else 0
        asked = params.max_tokens if fit == REFUSE else 0
        least = least_tokens(utf8_len(text), loaded.max_token_bytes) + bos
        if least >= n_ctx or (asked and least + asked > n_ctx):
            raise overflow(least, asked, n_ctx, exact=False)
        check()
        used = self.engine.count_tokens(text) + bos
        if used >= n_ctx or (asked and used + asked > n_ctx):
            raise overflow(used, asked, n_ctx)
        return used

    def _fit(self, request: TurnRequest, choice: TemplateChoice, loaded: LoadedModel,
             params: SamplingParams, reserve: int, check: Callable[[], None]
             ) -> tuple[RenderedPrompt, int]:
        options, n_ctx = request.options, loaded.n_ctx
        if options.fit != REFUSE:
            return fit_conversation(choice.template, request.messages, n_ctx,
                                    self.engine.count_tokens, reserve, system=options.system,
                                    add_generation_prompt=options.add_generation_prompt,
                                    max_token_bytes=loaded.max_token_bytes, check=check)
        rendered = render_turn(request, choice)
        return rendered, self._count_exact(rendered.text, rendered.add_bos, loaded, params,
                                           REFUSE, check)

    # ------------------------------------------------------------------ running
    def start(self, turn: PreparedTurn) -> Generation:
        if turn.text is None:
            raise TemplateError("nothing to send: the turn has no prompt text")
        return self.engine.generate(turn.text, turn.params, add_bos=turn.add_bos)

    def stop(self) -> None:
        self.engine.stop()

    def close(self) -> None:
        self.engine.close()
        self._loaded = self._loaded_id = None

