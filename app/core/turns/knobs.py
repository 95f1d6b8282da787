"""The knobs of a turn: load settings and sampling parameters, from the app's settings, the
model's own settings and what the face or the conversation overrides — in that order, the
later winning. The one place a `SamplingParams` or a `LoadSettings` is built for a turn.

Overrides are one flat mapping (a None value means "not set"):
- sampling: max_tokens, temperature, top_k, top_p, min_p, repeat_penalty, repeat_last_n, seed
  (a negative seed is a random one), stop (stop strings added to the template's), grammar;
- loading: context (tokens), threads, backend (auto|cpu|gpu), gpu_layers (-1: all).
The window's knobs, `corral chat`'s flags and an OpenAI request's fields all become one.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Mapping

from app.core import hardware
from app.core.engine import LoadSettings, SamplingParams
from app.core.sampling import SamplingError
from app.core.settings import SAMPLING_KEYS, ModelSettings, Settings

ENGINE_DEFAULTS = SamplingParams()
SAMPLING_FIELDS = tuple(f.name for f in fields(SamplingParams))
LOAD_KEYS = ("context", "threads", "backend", "gpu_layers")


def _given(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (overrides or {}).items() if v is not None}


def sampling_for(model_settings: ModelSettings | None,
                 overrides: Mapping[str, Any] | None = None) -> SamplingParams:
    """llama.cpp's defaults, then the model's saved sampling, then `overrides`. SamplingError
    names the field of a value that cannot be used."""
    values: dict[str, Any] = {}
    if model_settings is not None:
        values.update({k: v for k, v in model_settings.sampling.items() if k in SAMPLING_FIELDS})
    values.update({k: v for k, v in _given(overrides).items() if k in SAMPLING_FIELDS})
    seed = values.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and seed < 0:
        values["seed"] = None  # -1: a fresh random seed, reported in the stats
    if "stop" in values:
        stop = values["stop"]
        if not isinstance(stop, (list, tuple)):
            raise SamplingError("stop", "must be a list of strings")
        values["stop"] = tuple(stop)
    return SamplingParams(**values)


def check_overrides(overrides: Mapping[str, Any] | None) -> SamplingParams:
    """The sampling part of `overrides` checked on its own, before anything is loaded or sent
    (SamplingError names the field at fault)."""
    return sampling_for(None, overrides)


def context_for(settings: Settings, model_settings: ModelSettings | None,
                overrides: Mapping[str, Any] | None = None,
                n_ctx_train: int | None = None) -> int:
    """The context size a model is loaded with: the override, the model's setting, else the
    app's, at most what the model was trained on."""
    given = _given(overrides)
    if given.get("context"):
        return int(given["context"])
    if model_settings is not None and model_settings.context:
        return model_settings.context
    return min(settings.context_size, n_ctx_train) if n_ctx_train else settings.context_size


def load_settings_for(settings: Settings, model_settings: ModelSettings | None,
                      overrides: Mapping[str, Any] | None = None,
                      n_ctx_train: int | None = None) -> LoadSettings:
    """How to load a model: the app's backend, GPU layers and threads, the model's own
    context and GPU layers, then `overrides`."""
    given = _given(overrides)
    layers = given.get("gpu_layers")
    if layers is None and model_settings is not None:
        layers = model_settings.gpu_layers
    if layers is None:
        layers = settings.gpu_layers
    return LoadSettings(backend=given.get("backend") or settings.backend,
                        gpu_layers=None if layers == -1 else int(layers),
                        threads=int(given.get("threads") or 0) or settings.threads or None,
                        n_ctx=context_for(settings, model_settings, overrides, n_ctx_train))


def default_knobs(settings: Settings, model_settings: ModelSettings | None = None,
                  n_ctx_train: int | None = None) -> dict[str, Any]:
    """The knobs a new conversation starts with (the window shows them): llama.cpp's sampling
    defaults, the app's threads and context size, then what was remembered for the model."""
    out: dict[str, Any] = {
        "max_tokens": ENGINE_DEFAULTS.max_tokens, "temperature": ENGINE_DEFAULTS.temperature,
        "top_k": ENGINE_DEFAULTS.top_k, "top_p": ENGINE_DEFAULTS.top_p,
        "min_p": ENGINE_DEFAULTS.min_p, "repeat_penalty": ENGINE_DEFAULTS.repeat_penalty,
        "repeat_last_n": ENGINE_DEFAULTS.repeat_last_n, "seed": -1,
        "threads": settings.threads or hardware.default_threads(),
        "context": context_for(settings, None, None, n_ctx_train),
    }
    if model_settings is not None:
        out.update({k: v for k, v in model_settings.sampling.items() if k in out})
        if model_settings.context:
            out["context"] = model_settings.context
    return out


def remembered_changes(knobs: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """update_model_settings(**changes) that remember `knobs` for a model: the sampling keys
    the model settings know (a key equal to the app default is removed), and the context."""
    sampling: dict[str, Any] = {}
    for key in SAMPLING_KEYS:
        if key not in knobs:
            continue
        value = knobs[key]
        if key == "seed" and value == -1:
            value = None
        sampling[key] = None if value == base.get(key) else value
    context = knobs.get("context")
    return {"sampling": sampling,
            "context": None if context in (None, base.get("context")) else context}


def reserve_for(params: SamplingParams, n_ctx: int) -> int:
    """Room kept for the reply when fitting a conversation: max_tokens, at most half the
    context (0 = until the context is full: half of it)."""
    return max(1, min(params.max_tokens or n_ctx // 2, n_ctx // 2))
