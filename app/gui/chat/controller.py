"""The chat screen's behaviour: conversations, the model / template / mode / parameter choices.

Every user message is saved when it is sent; a reply is saved as it grows by its ReplyWriter in
the worker thread and read back from the store when it ends, so what the view shows after a
reply is what a restart shows. A new conversation is a draft (id 0) until its first message.
"""

from __future__ import annotations

import gc
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog

from app.core.chats import DEFAULT_TITLE, ChatStore, ChatStoreError, Conversation, Message
from app.core.library import Library, LibraryError, LocalModel
from app.core.memory_plan import format_bytes
from app.core.settings import Settings, SettingsError
from app.core.statefile import StateFileError
from app.core.templates import TemplateError, TemplateRegistry
from app.gui.chat import highlight, resolve
from app.gui.chat.bubble import MessageBubble
from app.gui.chat.context import ContextMixin
from app.gui.chat.resolve import ModelInfos, TemplateChoice
from app.gui.chat.turns import Active, TurnsMixin
from app.gui.workers import EngineWorker

if TYPE_CHECKING:
    from app.gui.chat.chat_screen import ChatScreen


class ChatController(TurnsMixin, ContextMixin, QObject):
    """The screen's behaviour; turns.py (sending, replies, the worker's signals) and context.py
    (prompt preview, context warning) hold the rest of its methods."""

    settingsFailed = Signal(str)  # from the settings thread

    def __init__(self, screen: "ChatScreen", store: ChatStore, worker: EngineWorker,
                 library: Library, settings: Settings, registry: TemplateRegistry) -> None:
        super().__init__(screen)
        self.s, self.store, self.worker = screen, store, worker
        self.library, self.settings, self.registry = library, settings, registry
        self.infos = ModelInfos()
        self._choices: dict[tuple[str, str | None], TemplateChoice] = {}
        self.models: list[LocalModel] = []
        self.conv: Conversation | None = None
        self.active: Active | None = None
        self.detached: dict[int, int] = {}  # rid → conversation of replies stopped by a switch
        self.after_reply: list[Callable[[], None]] = []
        self.loading: str | None = None
        self.tps: float | None = None
        self._check_timer = QTimer(self, singleShot=True, interval=350)
        self._check_timer.timeout.connect(self._check)
        self._params_timer = QTimer(self, singleShot=True, interval=400)
        self._params_timer.timeout.connect(self._save_params)
        self._pending_params: dict | None = None
        self._settings_thread = ThreadPoolExecutor(max_workers=1,
                                                   thread_name_prefix="corral-model-settings")
        self._last_save: Future | None = None
        self.settingsFailed.connect(self._error)
        self._connect()
        QTimer.singleShot(1500, self, self._warm_up)  # not if the screen is gone by then
        self.refresh_models()
        recent = store.conversations(limit=1)
        if recent:
            self.open(recent[0].id)
        else:
            self.new_chat()
        self.refresh_list()

    def _warm_up(self) -> None:
        """Once idle after start-up, pay the first-use costs now rather than in the first reply:
        Pygments is imported in a thread, a throw-away bubble makes PySide create its lazily
        made enums; then gc.freeze() keeps the start-up heap out of the garbage collector's full
        passes (each took ~20-40 ms on the GUI thread, a visible pause mid-reply)."""
        highlight.prewarm()
        bubble = MessageBubble(0, "assistant", "")
        bubble.set_text("**warm** `up`\n\n- a")
        bubble.set_state("complete", {"generated_tokens": 1})
        bubble.deleteLater()
        gc.freeze()

    def _connect(self) -> None:
        s, w = self.s, self.worker
        s.conversations.conversationActivated.connect(self.open)
        s.conversations.newRequested.connect(lambda: self.new_chat())
        s.conversations.renameRequested.connect(self.rename)
        s.conversations.deleteRequested.connect(self.delete)
        s.conversations.exportRequested.connect(self.export)
        s.conversations.searchChanged.connect(self.refresh_list)
        s.toolbar.modelChosen.connect(self.choose_model)
        s.toolbar.templateChosen.connect(self.choose_template)
        s.toolbar.modeChosen.connect(self.choose_mode)
        s.toolbar.cancelLoad.connect(self.worker.stop)
        s.composer.submitted.connect(self.send)
        s.composer.stopRequested.connect(self.stop)
        s.composer.draftChanged.connect(lambda _t: self._check_timer.start())
        s.messages.editRequested.connect(self.edit)
        s.messages.regenerateRequested.connect(self.regenerate)
        s.messages.libraryRequested.connect(s.libraryRequested)
        s.completion.runRequested.connect(self.run_completion)
        s.completion.stopRequested.connect(self.stop)
        s.completion.presetChosen.connect(self.choose_preset)
        s.completion.textEdited.connect(lambda _t: self._check_timer.start())
        s.parameters.changed.connect(self._params_changed)
        s.inspector.systemChanged.connect(self._system_changed)
        s.inspector.stopsChanged.connect(self._stops_changed)
        s.inspector.overrideChanged.connect(
            lambda text: self._set_options(prompt_override=text))
        w.tokens.connect(self._on_tokens)
        w.promptReady.connect(self._on_prompt)
        w.promptProgress.connect(self._on_prompt_progress)
        w.finished.connect(lambda rid, _stats: self._on_end(rid, None))
        w.failed.connect(self._on_end)
        w.loadStarted.connect(self._on_load_started)
        w.loadProgress.connect(self._on_load_progress)
        w.loaded.connect(self._on_loaded)
        w.loadFailed.connect(self._on_load_failed)
        w.contextChecked.connect(self._on_context)

    # ------------------------------------------------------------------ models, list, state
    def refresh_models(self) -> None:
        try:
            self.models = [m for m in self.library.scan() if m.ok]
        except (LibraryError, StateFileError, OSError) as exc:  # the chat still opens; said here
            self.models = []
            self._error(f"Could not read the library: {exc}")
        self.infos.clear()
        self._choices.clear()
        if self.models and self.conv is not None and self.conv.id == 0 and not self.conv.model_id:
            # The new chat opened while the library was empty talks to the first model added,
            # as if it had been there: the first import or download leads straight to chatting.
            model = self.models[0]
            self._update_conv(model_id=model.id, model_path=str(model.path))
            self._show()
            return
        self._show_models()

    def _show_models(self) -> None:
        items = []
        for m in self.models:
            bits = [m.id] + [b for b in (m.parameters_label, m.quantization) if b]
            items.append((m.id, " · ".join(bits) + f" · {format_bytes(m.size)}"))
        self.s.toolbar.set_models(items, self.conv.model_id if self.conv else None)
        self.s.messages.empty.set_has_models(bool(self.models))

    def model(self) -> LocalModel | None:
        return resolve.conversation_model(self.models, self.conv)

    def refresh_list(self, query: str | None = None) -> None:
        query = self.s.conversations.search.text() if query is None else query
        found = self.store.search(query) if query.strip() else self.store.conversations()
        self.s.conversations.set_conversations(found, self.conv.id if self.conv else None)

    def _update_conv(self, **changes) -> None:
        assert self.conv is not None
        if self.conv.id == 0:
            self.conv = replace(self.conv, **changes)
        else:
            self.conv = self.store.update_conversation(self.conv.id, **changes)

    def _set_options(self, **changes) -> None:
        if self.conv is None:
            return
        options = dict(self.conv.options)
        for key, value in changes.items():
            if value is None:
                options.pop(key, None)
            else:
                options[key] = value
        self._update_conv(options=options)

    def _ensure_saved(self) -> Conversation:
        assert self.conv is not None
        if self.conv.id == 0:
            c = self.conv
            self.conv = self.store.create_conversation(
                title=c.title, model_id=c.model_id, model_path=c.model_path,
                template_id=c.template_id, system_prompt=c.system_prompt, mode=c.mode,
                params=c.params, options=c.options)
        return self.conv

    def _error(self, text: str) -> None:
        self.s.error_banner.show_message(text, "error")

    def _set_busy(self, busy: bool) -> None:
        for view in (self.s.composer, self.s.messages, self.s.completion):
            view.set_busy(busy)
        self.s.stop_action.setEnabled(busy or self.loading is not None)
        self._status("generating" if busy else "idle")

    def _status(self, state: str, message: str | None = None, progress: float | None = None) -> None:
        loaded = self.worker.model
        info = {"model": loaded.path.stem if loaded else None,
                "backend": loaded.backend if loaded else None, "state": state,
                "progress": progress, "tokens_per_s": self.tps,
                "n_ctx": loaded.n_ctx if loaded else None}
        self.s.engineStatus.emit(info)
        if message is None:
            if loaded is None:
                message = "No model loaded"
            else:
                message = f"{loaded.path.stem} · {loaded.backend.upper()} · context {loaded.n_ctx}"
                if self.tps:
                    message += f" · {self.tps:.1f} tok/s"
        self.s.statusMessage.emit(message)

    # ------------------------------------------------------------------ conversations
    def open(self, cid: int) -> None:
        if self.conv is not None and self.conv.id == cid:
            return
        try:
            conv = self.store.conversation(cid)
        except ChatStoreError as exc:
            return self._error(str(exc))
        self._detach()
        self.s.composer.cancel_edit()
        self.conv = conv
        self._show()

    def new_chat(self, model_id: str | None = None, *, load: bool = False) -> None:
        self._detach()
        self.s.composer.cancel_edit()
        if model_id is None:
            model_id = self.conv.model_id if self.conv else None
            if model_id is None:
                recent = self.store.conversations(limit=1)
                model_id = recent[0].model_id if recent else None
        model = next((m for m in self.models if m.id == model_id), None)
        if model is None and self.models and not model_id:
            model = self.models[0]
        empty = self.conv is not None and self.conv.mode == "chat" and (
            self.conv.id == 0 or not self.store.messages(self.conv.id))
        fields = dict(model_id=model.id if model else None,
                      model_path=str(model.path) if model else None)
        if empty and self.conv is not None:
            if self.conv.model_id != fields["model_id"]:
                fields.update(params={}, template_id=None)
            self._update_conv(**fields)
        else:
            self.conv = Conversation(id=0, title=DEFAULT_TITLE, **fields)
        self._show()
        self.s.composer.focus()
        if load and model is not None:
            self._load_model()

    def _show(self) -> None:
        conv, s = self.conv, self.s
        assert conv is not None
        s.error_banner.hide()
        s.context_banner.hide()
        self._show_models()
        s.toolbar.set_mode(conv.mode)
        model = self.model()
        self._show_params(model)
        self._show_templates(model)
        if conv.mode == "chat":
            s.stack.setCurrentWidget(s.messages)
            s.composer.show()
            s.messages.set_messages(self.store.messages(conv.id) if conv.id else [], self._who)
            s.inspector.set_chat_mode(True)
            s.inspector.set_override(conv.options.get("prompt_override"))
        else:
            s.stack.setCurrentWidget(s.completion)
            s.composer.hide()
            s.inspector.set_chat_mode(False)
            self._show_completion()
        if model is None and conv.model_id:
            self._error(f"The model {conv.model_id!r} of this conversation is not in the "
                        f"library any more; choose another one above.")
        self.refresh_list()
        self._check_timer.start()

    def _who(self, m: Message) -> str:
        if m.role == "user":
            return "You"
        if m.role == "system":
            return "System"
        return str(m.stats.get("model") or (self.conv.model_id if self.conv else "") or "Assistant")

    def _show_params(self, model: LocalModel | None) -> None:
        if self._last_save is not None:
            self._last_save.result(timeout=10)  # a remembered change is read back, not lost
        settings = self.library.settings.get(model.id) if model else None
        n_train = model.header.context_length if model and model.header else None
        defaults = resolve.default_params(self.settings, settings, n_train)
        note = (f"Changes are remembered for {model.id} and used by its new chats."
                if model else "Choose a model to tune its parameters.")
        self.s.parameters.set_defaults(defaults, note)
        self.s.parameters.set_limits(max_context=n_train)
        self.s.parameters.set_values({**defaults, **(self.conv.params if self.conv else {})})

    def _template_choice(self, model: LocalModel) -> TemplateChoice:
        """Cached per model and conversation choice; cleared when either may have changed."""
        key = (model.id, self.conv.template_id if self.conv else None)
        if key not in self._choices:
            self._choices[key] = resolve.choose_template(
                self.registry, self.library, model, self.infos.get(model.path), key[1])
        return self._choices[key]

    def _show_templates(self, model: LocalModel | None) -> None:
        conv, s = self.conv, self.s
        chat = [(t.id, t.name) for t in self.registry.all() if t.kind == "chat"]
        presets = [(t.id, t.name) for t in self.registry.all() if t.kind == "completion"]
        s.completion.set_presets(presets, conv.template_id)
        auto_label, auto_tip = "Template: automatic", "Choose a model first"
        if model is not None:
            try:
                info = self.infos.get(model.path)
                if info.chat_template:
                    chat.insert(0, ("gguf", "The model's own template (from the GGUF file)"))
                choice = self._template_choice(model)
                auto_label, auto_tip = f"Auto: {choice.auto_name}", choice.auto.detail
                if conv.mode == "completion":
                    preset = self._preset()
                    s.inspector.set_template(
                        preset.name if preset else "none (completion mode)",
                        "Completion mode sends the editor's text as it is; a preset gives the "
                        "starting text and the stop strings.")
                else:
                    s.inspector.set_template(choice.template.name, choice.rule)
                s.inspector.set_system(conv.system_prompt, choice.template.default_system)
            except (TemplateError, OSError, ValueError) as exc:
                s.inspector.set_template("(none)", str(exc))
        s.toolbar.set_templates(auto_label, auto_tip, chat, presets, conv.template_id)

    def rename(self, cid: int, title: str) -> None:
        self.store.rename(cid, title)
        if self.conv and self.conv.id == cid:
            self.conv = self.store.conversation(cid)
        self.refresh_list()

    def delete(self, cid: int) -> None:
        if self.active and self.active.cid == cid:
            self.after_reply.append(lambda: self.delete(cid))
            return self.worker.stop()
        self.store.delete_conversation(cid)
        if self.conv and self.conv.id == cid:
            self.conv = None
            self.new_chat()
        self.refresh_list()

    def export(self, cid: int) -> None:
        conv = self.store.conversation(cid)
        safe = "".join(c if c.isalnum() or c in " -_" else "_" for c in conv.title).strip()
        path, _ = QFileDialog.getSaveFileName(self.s, "Export conversation",
                                              str(Path.home() / f"{safe or 'chat'}.md"),
                                              "Markdown (*.md);;JSON (*.json)")
        if path:
            try:
                self.store.export_to_file(cid, path)
            except OSError as exc:
                self._error(f"Could not export to {path}: {exc.strerror or exc}")

    # ------------------------------------------------------------------ choices
    def choose_model(self, model_id: str) -> None:
        model = next((m for m in self.models if m.id == model_id), None)
        if model is None or self.conv is None:
            return
        self._detach()
        changes: dict = dict(model_id=model.id, model_path=str(model.path))
        if self.conv.id == 0 or not self.store.messages(self.conv.id):
            changes["params"] = {}  # an empty chat takes the new model's remembered defaults
        self._update_conv(**changes)
        self._show()
        self._load_model()

    def choose_template(self, template_id: str | None) -> None:
        if self.conv is None:
            return
        # This conversation's choice only: making it the model's default for every chat is
        # the separate, explicit app.core.turns.make_default_template.
        self._update_conv(template_id=template_id)
        model = self.model()
        self._choices.clear()
        self._show_templates(model)
        self._check_timer.start()

    def registry_kind(self, template_id: str) -> str:
        if template_id == "gguf":
            return "chat"
        try:
            return self.registry.get(template_id).kind
        except TemplateError:
            return ""

    def choose_mode(self, mode: str) -> None:
        if self.conv is None or mode == self.conv.mode:
            return
        if self.active is not None:
            self.s.toolbar.set_mode(self.conv.mode)
            return
        self._flush_params()
        if self.conv.id and self.store.messages(self.conv.id):
            c = self.conv  # a used conversation keeps its mode: the other mode starts a new one
            self.conv = Conversation(id=0, title=DEFAULT_TITLE, model_id=c.model_id,
                                     model_path=c.model_path, mode=mode, params=c.params)
        else:
            self._update_conv(mode=mode, template_id=None)
        self._show()

    def _load_model(self) -> None:
        model = self.model()
        if model is not None and self.conv is not None:
            self.worker.load(model.path, self._load_settings(model))

    def _load_settings(self, model: LocalModel):
        params = self.s.parameters.values()  # the knobs show the conversation's values
        return resolve.load_settings_for(self.settings, self.library.settings.get(model.id),
                                         params)

    def _params_changed(self, values: dict) -> None:
        self._pending_params = values
        self._params_timer.start()

    def _save_params(self) -> None:
        values, self._pending_params = self._pending_params, None
        if values is None or self.conv is None:
            return
        self._update_conv(params=values)
        model = self.model()
        if model is not None:
            n_train = model.header.context_length if model.header else None
            base = resolve.default_params(self.settings, None, n_train)
            self._remember(model.id, **resolve.remembered_changes(values, base))
        self._check_timer.start()

    def _remember(self, model_id: str, **changes) -> None:
        """Save per-model defaults (Library.update_model_settings) in the settings thread: the
        file is written with fsync, which must not pause the event loop mid-reply."""
        def save() -> None:
            try:
                self.library.update_model_settings(model_id, **changes)
            except (SettingsError, OSError, LibraryError) as exc:
                self.settingsFailed.emit(f"Could not remember the settings of {model_id}: {exc}")
        try:
            self._last_save = self._settings_thread.submit(save)
        except RuntimeError:  # shut down already (the screen is closing): write it now
            save()

    def _system_changed(self, text: str | None) -> None:
        if self.conv is not None:
            self._update_conv(system_prompt=text)
            self._check_timer.start()

    def _stops_changed(self, stops: list[str] | None) -> None:
        self._set_options(stop=stops)
        self._check_timer.start()

    def apply_settings(self, settings: Settings) -> None:
        self.settings = settings
        self._show_params(self.model())
