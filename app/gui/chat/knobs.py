"""The conversation's knobs (sampling, threads, context size), a part of the chat session
(session.py) with the session as its one dependency: what the parameter panel shows, the
values the next turn uses, and their saving — in the conversation at once, and as the model's
defaults for its next chats in a thread of its own (the settings file is written with fsync,
which must not pause the event loop mid-reply)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.core import turns
from app.core.chats import ChatStoreError
from app.core.library import LibraryError
from app.core.settings import SettingsError

if TYPE_CHECKING:
    from app.gui.chat.model_choices import ModelEntry
    from app.gui.chat.session import ChatSession


@dataclass(frozen=True)
class KnobsView:
    defaults: dict[str, Any]
    values: dict[str, Any]
    note: str
    max_context: int | None


class Knobs(QObject):
    failed = Signal(str)  # from the settings thread

    def __init__(self, session: "ChatSession") -> None:
        super().__init__(session)
        self.session = session
        self.values: dict[str, Any] = {}
        self._timer = QTimer(self, singleShot=True, interval=400)
        self._timer.timeout.connect(self._save)
        self._dirty = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="corral-model-settings")
        self._last_save: Future | None = None
        self.failed.connect(lambda text: session.say(text))

    def show(self, entry: "ModelEntry | None") -> None:
        """The open conversation's knobs over its model's defaults, to the parameter panel."""
        s = self.session
        if self._last_save is not None:
            self._last_save.result(timeout=10)  # a remembered change is read back, not lost
        local = entry if entry is not None and not entry.remote else None
        settings = s.model_settings(local)
        header = local.model.header if local else None
        n_train = header.context_length if header else None
        defaults = turns.default_knobs(s.settings, settings, n_train)
        if local is not None:
            note = f"Changes are remembered for {local.id} and used by its new chats."
        elif entry is not None:
            note = (f"Sent to {entry.group} with each reply (threads and context size are the "
                    f"server's own).")
        else:
            note = "Choose a model to tune its parameters."
        self.values = {**defaults, **(s.conv.params if s.conv else {})}
        if n_train and isinstance(self.values.get("context"), int) \
                and self.values["context"] > n_train:
            self.values["context"] = n_train  # as the panel shows it: at most what it learned
        s.knobsShown.emit(KnobsView(defaults, dict(self.values), note, n_train))

    def set(self, values: dict[str, Any]) -> None:
        """The knobs as the user set them: used at once, saved shortly after."""
        self.values = dict(values)
        self._dirty = True
        self._timer.start()

    def flush(self) -> None:
        if self._timer.isActive():
            self._timer.stop()
            self._save()

    def _save(self) -> None:
        s = self.session
        if not self._dirty or s.conv is None:
            return
        self._dirty = False
        values = dict(self.values)
        try:
            s.update(params=values)
        except ChatStoreError:  # the conversation was deleted meanwhile: nothing to keep
            return
        entry = s.model()
        if entry is not None and not entry.remote:
            header = entry.model.header
            base = turns.default_knobs(s.settings, None, header.context_length if header else None)
            self._remember(entry.id, **turns.remembered_changes(values, base))
        s.next_prompt.schedule()

    def _remember(self, model_id: str, **changes: Any) -> None:
        library = self.session.library

        def save() -> None:
            try:
                library.update_model_settings(model_id, **changes)
            except (SettingsError, OSError, LibraryError) as exc:
                self.failed.emit(f"Could not remember the settings of {model_id}: {exc}")
        try:
            self._last_save = self._thread.submit(save)
        except RuntimeError:  # shut down already (the screen is closing): write it now
            save()

    def shutdown(self) -> None:
        self.flush()
        self._thread.shutdown(wait=True)  # the model settings are on disk
