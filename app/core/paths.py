"""Where Corral keeps its files.

Everything comes from platformdirs so that each OS gets its usual places. Setting the
environment variable CORRAL_HOME puts every location under that one folder instead, which
is what tests, benchmarks and portable installs use. Nothing is ever written next to the code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "Corral"
PARTIAL_DIR = ".partial"  # inside the models folder: downloads in progress (never scanned as models)
HOME_ENV = "CORRAL_HOME"


@dataclass(frozen=True)
class Paths:
    data: Path
    models: Path
    downloads: Path
    chats_db: Path
    logs: Path
    settings_file: Path
    templates: Path
    cache: Path

    def ensure(self) -> "Paths":
        """Create the folders (not the files) and return self."""
        for folder in (self.data, self.models, self.downloads, self.logs, self.templates,
                       self.cache, self.settings_file.parent, self.chats_db.parent):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def _under(root: Path) -> Paths:
    return Paths(
        data=root,
        models=root / "models",
        downloads=root / "downloads",
        chats_db=root / "chats.sqlite3",
        logs=root / "logs",
        settings_file=root / "settings.json",
        templates=root / "templates",
        cache=root / "cache",
    )


def get_paths() -> Paths:
    """The locations in force now (CORRAL_HOME is read on every call, so tests can change it)."""
    home = os.environ.get(HOME_ENV)
    if home:
        return _under(Path(home).expanduser().resolve())
    dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
    data = Path(dirs.user_data_dir)
    base = _under(data)
    return Paths(
        data=data,
        models=base.models,
        downloads=base.downloads,
        chats_db=base.chats_db,
        logs=Path(dirs.user_log_dir),
        settings_file=Path(dirs.user_config_dir) / "settings.json",
        templates=base.templates,
        cache=Path(dirs.user_cache_dir),
    )
