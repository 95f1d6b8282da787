"""Typed settings, saved atomically as JSON.

Two stores live here:
- `Settings`: the app-wide choices (models folder, backend, GPU layers, threads, theme, Hugging
  Face token, offline mode), in `get_paths().settings_file`.
- `ModelSettingsStore`: what the user chose for one model (prompt template, context size, GPU
  layers, sampling defaults), keyed by library model id, in `<data>/model_settings.json`.

Every write goes to a temporary file in the same folder, is flushed to disk, then renamed over
the old file (`os.replace`), so a crash leaves either the old or the new file, never half of one.
A file that cannot be read raises `SettingsError` naming the file and what is wrong with it; it is
never silently replaced by defaults.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from app.core.paths import get_paths

BACKENDS = ("auto", "cpu", "gpu")
THEMES = ("system", "light", "dark")


class SettingsError(Exception):
    """A settings file is unreadable or a value is out of range (the message says which)."""


# --------------------------------------------------------------------------- JSON files

def write_json_atomic(path: str | os.PathLike, data: Any, *, private: bool = False) -> None:
    """Write `data` as JSON to `path` atomically, creating its folder (see write_text_atomic).

    `private=True` makes the file readable by its owner only (it may hold a token)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_text_atomic(path, text, private=private)


def write_text_atomic(path: str | os.PathLike, text: str, *, private: bool = False) -> None:
    """Write `text` (UTF-8) to `path` atomically: a temp file in the same folder, fsynced, then
    os.replace, so a crash leaves the old file or the new one, never half of either."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if private:
            os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The JSON in `path`, or `default` when the file does not exist; SettingsError if unreadable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix it or delete it to start again from the defaults"
        ) from exc


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


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """The saved settings (defaults when none were saved yet)."""
    path = Path(path) if path is not None else settings_path()
    data = read_json(path, default=None)
    if data is None:
        return Settings()
    return Settings.from_dict(data, source=str(path))


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
    return load_settings().effective_models_dir()


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
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingsError(f"sampling {key} must be a number, not {value!r}")
        return self

    def is_default(self) -> bool:
        return self == ModelSettings()

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSettings":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known}).validate()


class ModelSettingsStore:
    """Per-model settings in one JSON file keyed by model id."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else get_paths().data / "model_settings.json"

    def _load(self) -> dict[str, Any]:
        data = read_json(self.path, default={})
        if not isinstance(data, dict):
            raise SettingsError(f"{self.path} must hold a JSON object")
        return data.get("models", {}) if "models" in data else {}

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
        sampling = dict(current.sampling)
        for key, value in (changes.pop("sampling", None) or {}).items():
            if value is None:
                sampling.pop(key, None)
            else:
                sampling[key] = value
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
