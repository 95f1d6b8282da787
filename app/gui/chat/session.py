"""The chat screen's model: one `ChatSession` owns what the screen is about — the open
conversation, its model (local or SERVER/MODEL), the knobs, the draft, the model loading, the
reply being written, the prompt prepared for it — and says every change as a Qt signal. The
widgets take the session in their constructor, subscribe to its signals and call its methods
(napari's pattern); the session never touches a widget.

    session = ChatSession(store, worker, library, settings)
    ...widgets built with `session`, subscribed...
    session.start()                   # the most recent conversation (or a new chat) is shown

Its parts, each a class of its own with the session as its one dependency, are public
attributes the views may call: `models` (model_choices.py: the picker's local and remote
models), `knobs` (knobs.py: the parameters and their saving), `templates` (template_part.py:
the template and why, the explicit "make it the model's default"), `replies` (replies.py:
send, stream, stop, regenerate, edit, completion runs, the engine worker's turn signals) and
`next_prompt` (next_prompt.py: the inspector's preview and how the next prompt fits). Turns run
through the core pipeline (app.core.turns) on the EngineWorker's thread, never on this one.

Every user message is saved when it is sent; a reply is saved as it grows (its ReplyWriter, in
the worker thread) and read back from the store when it ends, so what is shown after a reply is
what a restart shows. A new conversation is a draft (id 0) until its first message.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.core import turns
from app.core.chats import DEFAULT_TITLE, ChatStore, ChatStoreError, Conversation, Message
from app.core.engine import LoadedModel
from app.core.library import Library
from app.core.settings import ModelSettings, Settings, SettingsError
from app.core.statefile import merged
from app.core.templates import TemplateRegistry
from app.gui.chat.knobs import Knobs
from app.gui.chat.model_choices import ModelChoices, ModelEntry
from app.gui.chat.next_prompt import NextPrompt
from app.gui.chat.replies import Replies, completion_content
from app.gui.chat.template_part import Templates
from app.gui.workers import EngineWorker


class ChatSession(QObject):
    opened = Signal(object, list)         # Conversation, its messages: show it anew
    changed = Signal(object)              # the open Conversation's fields changed
    listChanged = Signal()                # the conversations' list is to be read again
    modelsChanged = Signal()              # session.models / the current model changed
    templatesShown = Signal(object)       # TemplatesView
    knobsShown = Signal(object)           # KnobsView
    messageAdded = Signal(object, str)    # Message, who
    messageEdited = Signal(int, str)      # a user message's new text
    messagesRemoved = Signal(int)         # that message and every later one
    editing = Signal(object, str)         # message id being edited (None: not editing), text
    draftSent = Signal()                  # the composer's text went out: clear it
    draftRefused = Signal(str)            # not sent (it cannot fit): why; the text is kept
    libraryWanted = Signal()              # the user needs a model first
    libraryStale = Signal()               # a model's file was found gone: read the library again
    replyStarted = Signal(str, object, str)   # mode, Message (chat) or None, who
    replyGrew = Signal(str)
    replyEnded = Signal(str, str, dict, object)   # mode, state, stats, saved text (or None)
    completionText = Signal(str)          # the completion editor gets this (a preset…)
    completionShown = Signal(str, str, str)   # prompt, completion, stats line
    busyChanged = Signal(bool)            # a reply is being written
    loadingChanged = Signal(object, float)    # model name (None: not loading), fraction
    problem = Signal(str, str)            # text, kind (error | info | warning): said once
    problemCleared = Signal()
    promptShown = Signal(object)          # next_prompt.PromptView
    contextShown = Signal(object)         # next_prompt.ContextView
    status = Signal(dict, str)            # {model, backend, state, progress, tokens_per_s,
    #                                       n_ctx}, a sentence for the status bar

    def __init__(self, store: ChatStore, worker: EngineWorker, library: Library,
                 settings: Settings, registry: TemplateRegistry | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store, self.worker, self.library = store, worker, library
        self.settings = settings
        self.registry = registry or TemplateRegistry()
        self.models = ModelChoices(library, offline=lambda: self.settings.offline, parent=self)
        self.conv: Conversation | None = None
        self.draft = ""                   # the composer's text
        self.completion_draft = ""        # the completion editor's
        self.loading: str | None = None
        self.tps: float | None = None
        self.knobs = Knobs(self)
        self.templates = Templates(self)
        self.models.changed.connect(self.modelsChanged)
        self.models.unreadable.connect(lambda _path: self.libraryStale.emit())
        self.replies = Replies(self)
        self.next_prompt = NextPrompt(self)
        worker.loadStarted.connect(self._load_started)
        worker.loadProgress.connect(self._load_progress)
        worker.loaded.connect(self._loaded)
        worker.loadFailed.connect(self._load_failed)

    def start(self, scan: bool = True) -> None:
        """Show the most recent conversation, or a new chat; list the servers' models.
        `scan=False`: the library is not read here — the window hands its own scan over
        (`refresh_models(scanned)`), so start-up does not read it twice on the GUI thread."""
        if scan:
            self.refresh_models()
        recent = self.store.conversations(limit=1)
        if recent:
            self.open(recent[0].id)
        else:
            self.new_chat()
        self.models.refresh_remote()

    # ------------------------------------------------------------------ reading
    def model(self) -> ModelEntry | None:
        """The open conversation's model (None: none chosen, or gone from the library)."""
        conv = self.conv
        return self.models.find(conv.model_id, conv.model_path) if conv else None

    def model_settings(self, entry: ModelEntry | None) -> ModelSettings | None:
        """A local model's own settings, read without scanning the library (None for a
        server's model, or when they cannot be read: said)."""
        if entry is None or entry.remote:
            return None
        try:
            return self.library.settings.get(entry.id)
        except SettingsError as exc:
            self.say(str(exc))
            return None

    def who(self, message: Message) -> str:
        if message.role == "user":
            return "You"
        if message.role == "system":
            return "System"
        return str(message.stats.get("model") or (self.conv.model_id if self.conv else "")
                   or "Assistant")

    def messages(self) -> list[Message]:
        return self.store.messages(self.conv.id) if self.conv and self.conv.id else []

    def conversations(self, query: str = "") -> list[Conversation]:
        return self.store.search(query) if query.strip() else self.store.conversations()

    @property
    def busy(self) -> bool:
        return self.replies.active is not None

    @property
    def can_stop(self) -> bool:
        return self.busy or self.loading is not None

    # ------------------------------------------------------------------ the turns (replies.py)
    def send(self, text: str) -> bool:
        return self.replies.send(text)

    def stop(self) -> None:
        self.replies.stop()

    def regenerate_last(self) -> None:
        self.replies.regenerate_last()

    # ------------------------------------------------------------------ saying things
    def say(self, text: str, kind: str = "error") -> None:
        self.problem.emit(text, kind)

    def show_status(self, state: str, message: str | None = None,
                    progress: float | None = None) -> None:
        loaded = self.worker.model
        info = {"model": loaded.path.stem if loaded else None,
                "backend": loaded.backend if loaded else None, "state": state,
                "progress": progress, "tokens_per_s": self.tps,
                "n_ctx": loaded.n_ctx if loaded else None}
        if message is None:
            if loaded is None:
                message = "No model loaded"
            else:
                message = f"{loaded.path.stem} · {loaded.backend.upper()} · context {loaded.n_ctx}"
                if self.tps:
                    message += f" · {self.tps:.1f} tok/s"
        self.status.emit(info, message)

    # ------------------------------------------------------------------ the conversation
    def update(self, **changes: Any) -> None:
        assert self.conv is not None
        if self.conv.id == 0:
            self.conv = replace(self.conv, **changes)
        else:
            self.conv = self.store.update_conversation(self.conv.id, **changes)
        self.changed.emit(self.conv)

    def set_options(self, **changes: Any) -> None:
        if self.conv is None:
            return
        self.update(options=merged(self.conv.options, changes))

    def ensure_saved(self) -> Conversation:
        assert self.conv is not None
        if self.conv.id == 0:
            c = self.conv
            self.conv = self.store.create_conversation(
                title=c.title, model_id=c.model_id, model_path=c.model_path,
                template_id=c.template_id, system_prompt=c.system_prompt, mode=c.mode,
                params=c.params, options=c.options)
        return self.conv

    def reload(self) -> None:
        """Read the open conversation again (a reply or a title changed it in the store)."""
        if self.conv is not None and self.conv.id:
            self.conv = self.store.conversation(self.conv.id)
            self.changed.emit(self.conv)

    def open(self, cid: int) -> None:
        if self.conv is not None and self.conv.id == cid:
            return
        try:
            conv = self.store.conversation(cid)
        except ChatStoreError as exc:
            return self.say(str(exc))
        self.replies.detach()
        self.conv = conv
        self.show()

    def new_chat(self, model_id: str | None = None, *, load: bool = False) -> None:
        self.replies.detach()
        if model_id is None:
            model_id = self.conv.model_id if self.conv else None
            if model_id is None:
                recent = self.store.conversations(limit=1)
                model_id = recent[0].model_id if recent else None
        entry = self.models.find(model_id)
        if entry is None and self.models.local and not model_id:
            entry = self.models.local[0]
        empty = self.conv is not None and self.conv.mode == "chat" and (
            self.conv.id == 0 or not self.store.messages(self.conv.id))
        fields: dict[str, Any] = dict(model_id=entry.id if entry else None,
                                      model_path=str(entry.path) if entry and entry.path
                                      else None)
        if empty and self.conv is not None:
            if self.conv.model_id != fields["model_id"]:
                fields.update(params={}, template_id=None)
            self.update(**fields)
        else:
            self.conv = Conversation(id=0, title=DEFAULT_TITLE, **fields)
        self.show()
        if load:
            self.load_model()

    def show(self) -> None:
        """Tell every view the open conversation anew."""
        conv = self.conv
        assert conv is not None
        self.replies.cancel_edit()
        self.problemCleared.emit()
        entry = self.model()
        self.modelsChanged.emit()
        self.knobs.show(entry)
        self.templates.show(entry)
        messages = self.messages()
        self.opened.emit(conv, messages)
        if conv.mode == "completion":
            content = completion_content(messages)
            self.completion_draft = content[0] + content[1]
            self.completionShown.emit(*content)
        self._say_if_missing(entry)
        self.listChanged.emit()
        self.next_prompt.schedule()

    def rename(self, cid: int, title: str) -> None:
        self.store.rename(cid, title)
        if self.conv and self.conv.id == cid:
            self.reload()
        self.listChanged.emit()

    def delete(self, cid: int) -> None:
        if self.replies.active and self.replies.active.cid == cid:
            self.replies.after_reply.append(lambda: self.delete(cid))
            return self.worker.stop()
        self.store.delete_conversation(cid)
        if self.conv and self.conv.id == cid:
            self.conv = None
            self.new_chat()
        self.listChanged.emit()

    def export(self, cid: int, path: str) -> None:
        try:
            self.store.export_to_file(cid, path)
        except (OSError, ChatStoreError) as exc:
            self.say(f"Could not export to {path}: {getattr(exc, 'strerror', None) or exc}")

    # ------------------------------------------------------------------ models
    def refresh_models(self, scanned: list | None = None) -> None:
        """Read the library again (`scanned`: (LocalModel, family) pairs the window has)."""
        before = self.model()
        if scanned is None:
            problem = self.models.refresh_local()
            if problem:
                self.say(problem)
        else:
            self.models.set_local(scanned)
        self.templates.clear()
        if self.conv is None:
            return
        if self.models.local and self.conv.id == 0 and not self.conv.model_id:
            # The new chat opened while the library was empty talks to the first model added,
            # as if it had been there: the first import or download leads straight to chatting.
            first = self.models.local[0]
            self.update(model_id=first.id, model_path=str(first.path))
            self.show()
            return
        entry = self.model()
        if entry != before:  # found now (the library read after the chat opened), or gone
            self.knobs.flush()
            self.knobs.show(entry)
            self.templates.show(entry)
            self._say_if_missing(entry)
            self.next_prompt.schedule()

    def _say_if_missing(self, entry: ModelEntry | None) -> None:
        conv = self.conv
        if entry is None and conv is not None and conv.model_id and self.models.ready:
            path = Path(conv.model_path) if conv.model_path else None
            if path is not None and not path.exists():
                self.say(f"The file of {conv.model_id}, {path}, is gone (moved or deleted); "
                         f"choose another model above, or put the file back.")
            else:
                self.say(f"The model {conv.model_id!r} of this conversation is not in the "
                         f"library any more; choose another one above.")

    def choose_model(self, model_id: str) -> None:
        entry = self.models.find(model_id)
        if entry is None or self.conv is None:
            return
        self.replies.detach()
        changes: dict[str, Any] = dict(model_id=entry.id,
                                       model_path=str(entry.path) if entry.path else None)
        if self.conv.id == 0 or not self.store.messages(self.conv.id):
            changes["params"] = {}  # an empty chat takes the new model's remembered defaults
        self.update(**changes)
        self.show()
        self.load_model()

    def load_model(self) -> None:
        """Start loading the conversation's local model with its knobs (a server's: nothing)."""
        entry = self.model()
        if entry is not None and not entry.remote:
            self.worker.load(entry.path, turns.load_settings_for(
                self.settings, self.model_settings(entry), self.knobs.values,
                entry.model.header.context_length if entry.model.header else None))

    def _load_started(self, path: str) -> None:
        self.loading = Path(path).stem
        self.loadingChanged.emit(self.loading, 0.0)
        self.show_status("loading", f"Loading {self.loading}…", 0.0)

    def _load_progress(self, fraction: float) -> None:
        if self.loading:
            self.loadingChanged.emit(self.loading, fraction)
            self.show_status("loading", f"Loading {self.loading}… {fraction:.0%}", fraction)

    def _loaded(self, model: LoadedModel) -> None:
        self.loading = None
        self.loadingChanged.emit(None, 1.0)
        if model.fallback_reason:
            self.say(model.fallback_reason, "info")
        self.show_status("generating" if self.busy else "idle",
                         f"Loaded {model.path.stem} on {model.backend.upper()} in "
                         f"{model.load_s:.1f} s")
        self.next_prompt.schedule()

    def _load_failed(self, message: str) -> None:
        name, self.loading = self.loading, None
        self.next_prompt.waiting = None  # a draft waiting for its check is not sent
        self.loadingChanged.emit(None, 0.0)
        self.show_status("error", f"Could not load {name or 'the model'}")
        entry = self.model()
        if entry is not None and entry.path is not None and not entry.path.exists():
            self.libraryStale.emit()  # moved or deleted since the library was read
        if "cancelled" in message:
            self.say("Loading the model was cancelled.", "info")
        elif not self.busy:  # a reply's failed load is said once, in the reply's footer
            self.say(message)

    # ------------------------------------------------------------------ templates and modes
    def choose_mode(self, mode: str) -> None:
        if self.conv is None or mode == self.conv.mode:
            return
        if self.busy:
            self.opened.emit(self.conv, self.messages())  # the buttons show the mode it has
            return
        self.knobs.flush()
        if self.conv.id and self.store.messages(self.conv.id):
            c = self.conv  # a used conversation keeps its mode: the other mode starts a new one
            self.conv = Conversation(id=0, title=DEFAULT_TITLE, model_id=c.model_id,
                                     model_path=c.model_path, mode=mode, params=c.params)
        else:
            self.update(mode=mode, template_id=None)
        self.show()

    def set_system(self, text: str | None) -> None:
        if self.conv is not None:
            self.update(system_prompt=text)
            self.next_prompt.schedule()

    def set_stops(self, stops: list[str] | None) -> None:
        self.set_options(stop=stops)
        self.next_prompt.schedule()

    def set_prompt_override(self, text: str | None) -> None:
        self.set_options(prompt_override=text)

    def set_draft(self, text: str) -> None:
        """The composer's text, for the next prompt's preview and its context check."""
        self.draft = text
        self.next_prompt.schedule()

    def set_completion_text(self, text: str) -> None:
        self.completion_draft = text
        self.next_prompt.schedule()

    def apply_settings(self, settings: Settings) -> None:
        self.knobs.flush()
        self.settings = settings
        self.knobs.show(self.model())
        self.models.refresh_remote()  # offline mode may have changed, servers been added

    def shutdown(self) -> None:
        self.knobs.shutdown()
        if self.can_stop:
            self.worker.stop()
