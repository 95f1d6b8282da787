"""Typed settings, saved atomically as JSON.

Two stores live here:
- `Settings`: the app-wide choices (models folder, backend, GPU layers, threads, theme, Hugging
  Face token, offline mode), in `get_paths().settings_file`.
- `ModelSettingsStore`: what the user chose for one model (prompt template, context size, GPU
  layers, sampling defaults), keyed by library model id, in `<data>/model_settings.json`.

Both are read and written by app.core.statefile: every write goes to a temporary file in the
same folder, is flushed to disk, then renamed over the old file, so a crash leaves either the old
or the new file, never half of one. A file that cannot be used is never silently replaced: it is
set aside under a dated name and the user is told which file, what was wrong and where it went
(`load_settings` raises SettingsError with that message; `current_settings` notifies it).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from app.core import statefile
from app.core.paths import get_paths
from app.core.sampling import SamplingError, check_value
from app.core.statefile import StateFileError, expect, keep_entries, merged
# The writers live with the reader in statefile; they are imported from here by older callers.
from app.core.statefile import write_json_atomic, write_text_atomic  # noqa: F401

BACKENDS = ("auto", "cpu", "gpu")
THEMES = ("system", "light", "dark")


class SettingsError(StateFileError):
    """A settings file is unusable or a value is out of range (the message says which).

    Raised by `load_settings` with `settings` set to what is in force instead (the fields that
    could be used, else the defaults)."""

    def __init__(self, message: str, settings: "Settings | None" = None):
        super().__init__(message)
        self.settings = settings if settings is not None else Settings()


# --------------------------------------------------------------------------- JSON files

def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The JSON in `path`, or `default` when the file does not exist; SettingsError naming the
    file for anything unusable (bounded in size and depth; see app.core.statefile). State files
    with a policy for damage are read with statefile.load/read instead."""
    try:
        return statefile.parse_file(path, missing=default)
    except StateFileError as exc:
        raise SettingsError(str(exc)) from None


# --------------------------------------------------------------------------- app settings

@dataclass
class Settings:
    models_dir: str | None = None   # None: the default models folder (get_paths().models)
    backend: str = "auto"           # auto | cpu | gpu
    gpu_layers: int = -1            # -1: as many as fit / all when the backend offloads
    threads: int | None = None      # None: chosen from the machine's cores
    context_size: int = 4096        # default context for models with no setting of their own
    theme: str = "system"           # system | light | dark
    hf_token: str | None = None
    offline: bool = False
    # Keys written by a newer Corral are kept (and written back) rather than dropped.
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def validate(self) -> "Settings":
        if self.backend not in BACKENDS:
            raise SettingsError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.theme not in THEMES:
            raise SettingsError(f"theme must be one of {', '.join(THEMES)}, not {self.theme!r}")
        _check_int("gpu_layers", self.gpu_layers, minimum=-1)
        if self.threads is not None:
            _check_int("threads", self.threads, minimum=1)
        _check_int("context_size", self.context_size, minimum=64)
        if not isinstance(self.offline, bool):
            raise SettingsError(f"offline must be true or false, not {self.offline!r}")
        for name in ("models_dir", "hf_token"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise SettingsError(f"{name} must be text, not {value!r}")
        return self

    def effective_models_dir(self) -> Path:
        if self.models_dir:
            return Path(self.models_dir).expanduser()
        return get_paths().models

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "extra"}
        return {**self.extra, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "settings") -> "Settings":
        if not isinstance(data, Mapping):
            raise SettingsError(f"{source} must hold a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        try:
            settings = cls(**values, extra=extra)
            return settings.validate()
        except SettingsError as exc:
            raise SettingsError(f"{source}: {exc}") from None


def _check_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SettingsError(f"{name} must be a whole number ≥ {minimum}, not {value!r}")


def settings_path() -> Path:
    return get_paths().settings_file


def _check_settings(value: Any, problems: list[str]) -> dict[str, Any]:
    """The fields of a settings file that are usable (keys of a newer Corral kept as they are);
    one problem for each field left out, so the others stay in force."""
    data = expect(value, dict)
    known = {f.name for f in fields(Settings)} - {"extra"}
    out = {}
    for key, item in data.items():
        if key in known:
            try:
                Settings(**{key: item}).validate()
            except SettingsError as exc:
                problems.append(str(exc))
                continue
        out[key] = item
    return out


SETTINGS_FILE = statefile.Schema(check=_check_settings, private=True,
                                 then="Corral starts with the default settings")


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """The saved settings (defaults when none were saved yet).

    A file that cannot be used as it is (not UTF-8, not JSON, the wrong shape, a value out of
    range) is set aside (see app.core.statefile) and SettingsError is raised with the message
    for the user; its `settings` are those in force now. `current_settings()` is the same for
    callers that must go on."""
    path = Path(path) if path is not None else settings_path()
    try:
        loaded = statefile.load(path, SETTINGS_FILE)
    except StateFileError as exc:  # unreadable, or damaged and it could not be set aside
        raise SettingsError(f"{exc}; Corral uses the default settings for now") from None
    settings = Settings.from_dict(loaded.value, source=str(path))
    if loaded.notice:
        raise SettingsError(loaded.notice, settings)
    return settings


def current_settings() -> Settings:
    """The settings in force: load_settings(), with any problem told through statefile.notify
    (the CLI prints it, the window shows it) instead of raised."""
    try:
        return load_settings()
    except SettingsError as exc:
        statefile.notify(str(exc))
        return exc.settings


def save_settings(settings: Settings, path: str | os.PathLike | None = None) -> Path:
    settings.validate()
    path = Path(path) if path is not None else settings_path()
    write_json_atomic(path, settings.to_dict(), private=True)
    return path


def update_settings(**changes: Any) -> Settings:
    """Load, change some fields, validate, save and return the settings."""
    settings = replace(load_settings(), **changes)
    save_settings(settings)
    return settings


def models_dir() -> Path:
    """The models folder in force: the settings' override, else the default location."""
    return current_settings().effective_models_dir()


# --------------------------------------------------------------------------- per-model settings

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed")


@dataclass
class ModelSettings:
    """What the user chose for one model; None everywhere means "use the defaults"."""

    template: str | None = None      # prompt template id (see app.core.templates)
    context: int | None = None       # context size in tokens
    gpu_layers: int | None = None    # -1 = all
    system_prompt: str | None = None
    sampling: dict[str, float | int] = field(default_factory=dict)

    def validate(self) -> "ModelSettings":
        if self.template is not None and not isinstance(self.template, str):
            raise SettingsError(f"template must be a template id, not {self.template!r}")
        if self.context is not None:
            _check_int("context", self.context, minimum=64)
        if self.gpu_layers is not None:
            _check_int("gpu_layers", self.gpu_layers, minimum=-1)
        if not isinstance(self.sampling, dict):
            raise SettingsError("sampling must be an object of name → number")
        for key, value in self.sampling.items():
            if key not in SAMPLING_KEYS:
                raise SettingsError(f"unknown sampling setting {key!r} (known: {', '.join(SAMPLING_KEYS)})")
            try:  # the engine's own bounds (app.core.sampling), so a saved value always works
                check_value(key, value)
            except SamplingError as exc:
                raise SettingsError(f"sampling {exc}") from None
        return self

    def is_default(self) -> bool:
        return self == ModelSettings()

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known}).validate()


def _check_model_settings(value: Any, problems: list[str]) -> dict[str, Any]:
    data = expect(value, dict)
    models = expect(data.get("models", {}), dict, "models")
    return {"version": 1, "models": keep_entries(models, _check_model_entry, problems, "model")}


def _check_model_entry(_model_id: str, raw: Any) -> dict[str, Any]:
    try:
        ModelSettings.from_dict(expect(raw, dict, "its settings"))
    except (SettingsError, TypeError) as exc:
        raise statefile.Damaged(str(exc)) from None
    return raw


MODEL_SETTINGS_FILE = statefile.Schema(
    default=lambda: {"version": 1, "models": {}}, check=_check_model_settings,
    then="every model starts again from the default settings")


class ModelSettingsStore:
    """Per-model settings in one JSON file keyed by model id."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else get_paths().data / "model_settings.json"

    def _load(self) -> dict[str, Any]:
        """The models' settings; an entry that cannot be used was left out (and the file as it
        was set aside, with a notice) by the reader, so every entry here validates."""
        return dict(statefile.read(self.path, MODEL_SETTINGS_FILE)["models"])

    def _save(self, models: dict[str, Any]) -> None:
        write_json_atomic(self.path, {"version": 1, "models": models})

    def get(self, model_id: str) -> ModelSettings:
        raw = self._load().get(model_id)
        if raw is None:
            return ModelSettings()
        try:
            return ModelSettings.from_dict(raw)
        except (SettingsError, TypeError) as exc:
            raise SettingsError(f"{self.path}: settings of {model_id!r}: {exc}") from None

    def set(self, model_id: str, settings: ModelSettings) -> ModelSettings:
        settings.validate()
        models = self._load()
        if settings.is_default():
            models.pop(model_id, None)
        else:
            models[model_id] = settings.to_dict()
        self._save(models)
        return settings

    def update(self, model_id: str, **changes: Any) -> ModelSettings:
        """Change some fields; `sampling=` is merged key by key (a None value removes a key)."""
        current = self.get(model_id)
        sampling = merged(current.sampling, changes.pop("sampling", None) or {})
        return self.set(model_id, replace(current, sampling=sampling, **changes))

    def remove(self, model_id: str) -> None:
        models = self._load()
        if models.pop(model_id, None) is not None:
            self._save(models)

    def rename(self, old_id: str, new_id: str) -> None:
        models = self._load()
        if old_id in models:
            models[new_id] = models.pop(old_id)
            self._save(models)

    def all(self) -> dict[str, ModelSettings]:
        return {k: ModelSettings.from_dict(v) for k, v in self._load().items()}
