"""The chat screen's behaviour: conversations, turns, the engine worker's signals, saving.

Every user message is saved when it is sent; a reply is saved as it grows by its ReplyWriter in
the worker thread and read back from the store when it ends, so what the view shows after a
reply is what a restart shows. A new conversation is a draft (id 0) until its first message.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QFileDialog

from app.core.chats import DEFAULT_TITLE, ChatStore, ChatStoreError, Conversation, Message
from app.core.engine import LoadedModel
from app.core.library import Library, LocalModel
from app.core.memory_plan import format_bytes
from app.core.settings import Settings, SettingsError
from app.core.templates import PromptTemplate, TemplateError, TemplateRegistry, render
from app.gui.chat import resolve
from app.gui.chat.message_view import stats_line
from app.gui.chat.resolve import ModelInfos, TemplateChoice
from app.gui.workers import EngineWorker, PromptPlan, ReplyRequest

if TYPE_CHECKING:
    from app.gui.chat.chat_screen import ChatScreen


@dataclass
class Active:
    rid: int
    cid: int
    message_id: int
    mode: str


class ChatController(QObject):
    def __init__(self, screen: "ChatScreen", store: ChatStore, worker: EngineWorker,
                 library: Library, settings: Settings, registry: TemplateRegistry) -> None:
        super().__init__(screen)
        self.s, self.store, self.worker = screen, store, worker
        self.library, self.settings, self.registry = library, settings, registry
        self.infos = ModelInfos()
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
        self._connect()
        self.refresh_models()
        recent = store.conversations(limit=1)
        if recent:
            self.open(recent[0].id)
        else:
            self.new_chat()
        self.refresh_list()

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
        self.models = [m for m in self.library.scan() if m.ok]
        self._show_models()

    def _show_models(self) -> None:
        items = []
        for m in self.models:
            bits = [m.id] + [b for b in (m.parameters_label, m.quantization) if b]
            items.append((m.id, " · ".join(bits) + f" · {format_bytes(m.size)}"))
        self.s.toolbar.set_models(items, self.conv.model_id if self.conv else None)

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
        settings = self.library.model_settings(model.id) if model else None
        n_train = model.header.context_length if model and model.header else None
        defaults = resolve.default_params(self.settings, settings, n_train)
        note = (f"Changes are remembered for {model.id} and used by its new chats."
                if model else "Choose a model to tune its parameters.")
        self.s.parameters.set_defaults(defaults, note)
        self.s.parameters.set_limits(max_context=n_train)
        self.s.parameters.set_values({**defaults, **(self.conv.params if self.conv else {})})

    def _template_choice(self, model: LocalModel) -> TemplateChoice:
        return resolve.choose_template(self.registry, self.library, model,
                                       self.infos.get(model.path), self.conv.template_id)

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
        self._update_conv(template_id=template_id)
        model = self.model()
        if model is not None and template_id and self.registry_kind(template_id) == "chat":
            try:
                self.library.update_model_settings(model.id, template=template_id)
            except SettingsError as exc:
                self._error(str(exc))
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
        params = {**self.s.parameters.values(), **(self.conv.params if self.conv else {})}
        return resolve.load_settings_for(self.settings, self.library.model_settings(model.id),
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
            try:
                self.library.update_model_settings(model.id,
                                                   **resolve.remembered_changes(values, base))
            except SettingsError as exc:
                self._error(str(exc))
        self._check_timer.start()

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

    # ------------------------------------------------------------------ chat turns
    def _ready(self) -> tuple[LocalModel, TemplateChoice] | None:
        model = self.model()
        if model is None:
            if not self.models:
                self._error("Add a model first: download one from the catalog or import a "
                            "GGUF file in the Library.")
                self.s.libraryRequested.emit()
            else:
                self._error("Choose a model for this conversation in the bar above.")
            return None
        try:
            return model, self._template_choice(model)
        except (TemplateError, OSError, ValueError) as exc:
            self._error(f"Cannot use {model.id}: {exc}")
            return None

    def send(self, text: str) -> None:
        if self.active is not None or self.conv is None or self.conv.mode != "chat" \
                or not text.strip():
            return
        if self._ready() is None:
            return
        self._flush_params()
        conv = self._ensure_saved()
        editing = self.s.composer.editing
        if editing is not None:
            self.store.update_message(editing, content=text)
            self.store.delete_messages_from(conv.id, editing + 1)
            self.s.messages.remove_from(editing + 1)
            bubble = self.s.messages.bubble(editing)
            if bubble is not None:
                bubble.set_text(text)
        else:
            self.s.messages.add_message(self.store.add_message(conv.id, "user", text), "You")
        self.s.composer.sent()
        self.conv = self.store.conversation(conv.id)
        self._start_reply()

    def _start_reply(self) -> None:
        ready = self._ready()
        if ready is None or self.conv is None:
            return
        model, choice = ready
        conv = self.conv
        params = self.s.parameters.values()
        override = conv.options.get("prompt_override")
        if override is not None:
            self._set_options(prompt_override=None)
            self.s.inspector.set_override(None)
        stops = conv.options.get("stop")
        messages = tuple(resolve.history(self.store.messages(conv.id)))
        writer = self.store.begin_reply(conv.id, stats={
            "model": model.id, "template": choice.template.id, "params": params})
        request = ReplyRequest(
            model_path=str(model.path), load=self._load_settings(model),
            params=resolve.sampling_from(params), template=choice.template,
            messages=messages,
            system=conv.system_prompt, prompt=override,
            stop=tuple(stops) if stops is not None else None,
            add_bos=choice.template.add_bos, writer=writer)
        self.s.messages.begin_stream(self.store.message(writer.message_id), model.id)
        self._begin(request, writer.message_id, "chat")

    def _begin(self, request: ReplyRequest, message_id: int, mode: str) -> None:
        self.s.error_banner.hide()
        rid = self.worker.generate(request)
        self.active = Active(rid, self.conv.id, message_id, mode)
        self._set_busy(True)
        self.refresh_list()

    def regenerate_last(self) -> None:
        last = next((b for b in reversed(self.s.messages.bubbles) if b.role == "assistant"), None)
        if last is not None:
            self.regenerate(last.message_id)

    def regenerate(self, message_id: int) -> None:
        if self.active is not None or self.conv is None or not self.conv.id:
            return
        if not any(m.role == "user" and m.id < message_id for m in self.store.messages(self.conv.id)):
            return
        self.store.delete_messages_from(self.conv.id, message_id)
        self.s.messages.remove_from(message_id)
        self._start_reply()

    def edit(self, message_id: int) -> None:
        if self.active is None:
            self.s.composer.begin_edit(message_id, self.store.message(message_id).content)

    def stop(self) -> None:
        if self.active is not None or self.loading is not None:
            self.worker.stop()

    def _detach(self) -> None:
        """Leave a running reply: stop it; the worker still saves what it wrote."""
        self._flush_params()
        if self.active is not None:
            self.detached[self.active.rid] = self.active.cid
            self.worker.stop()
            if self.active.mode == "chat":
                self.s.messages.end_stream("interrupted", {"stop_reason": "cancelled"})
            self.active = None
            self._set_busy(False)

    def _flush_params(self) -> None:
        if self._params_timer.isActive():
            self._params_timer.stop()
            self._save_params()

    def shutdown(self) -> None:
        self._flush_params()
        if self.active is not None or self.loading is not None:
            self.worker.stop()

    # ------------------------------------------------------------------ completion mode
    def _preset(self) -> PromptTemplate | None:
        tid = self.conv.template_id if self.conv else None
        if tid and self.registry_kind(tid) == "completion":
            return self.registry.get(tid)
        return None

    def _show_completion(self) -> None:
        messages = self.store.messages(self.conv.id) if self.conv and self.conv.id else []
        prompt = next((m for m in reversed(messages) if m.role == "user"), None)
        reply = next((m for m in messages if prompt and m.id > prompt.id and m.role == "assistant"),
                     None)
        self.s.completion.set_content(prompt.content if prompt else "",
                                      reply.content if reply else "",
                                      stats_line(reply.stats, reply.state) if reply else "")

    def choose_preset(self, template_id: str) -> None:
        self._update_conv(template_id=template_id or None)
        preset = self._preset()
        if preset is not None and preset.preset:
            self.s.completion.insert_preset(preset.preset)
        self._check_timer.start()

    def run_completion(self) -> None:
        if self.active is not None or self.conv is None or self.conv.mode != "completion":
            return
        text = self.s.completion.text()
        if ">PROMPT" in text:
            self.s.completion.insert_preset(text)  # selects the placeholder
            return self._error("Replace >PROMPT with your text first (it is selected).")
        ready = self._ready()
        if ready is None or not text.strip():
            return
        model = ready[0]
        self._flush_params()
        was_untitled = self.conv.id == 0 or self.conv.title == DEFAULT_TITLE
        conv = self._ensure_saved()
        preset = self._preset()
        self.store.add_message(conv.id, "user", text)
        if was_untitled:
            title = resolve.completion_title(text, preset.preset if preset else None)
            self.store.rename(conv.id, title[:60] if title else "Completion")
        self.conv = self.store.conversation(conv.id)
        params = self.s.parameters.values()
        stops = conv.options.get("stop")
        if stops is None:
            stops = list(preset.stop) if preset else []
        writer = self.store.begin_reply(conv.id, stats={
            "model": model.id, "template": preset.id if preset else "raw", "params": params})
        request = ReplyRequest(model_path=str(model.path), load=self._load_settings(model),
                               params=resolve.sampling_from(params), prompt=text,
                               stop=tuple(stops), add_bos=True, writer=writer)
        self.s.completion.begin_stream()
        self._begin(request, writer.message_id, "completion")

    # ------------------------------------------------------------------ worker signals
    def _on_tokens(self, rid: int, text: str) -> None:
        if self.active is not None and rid == self.active.rid:
            if self.active.mode == "chat":
                self.s.messages.append(text)
            else:
                self.s.completion.append(text)

    def _on_prompt(self, rid: int, plan: PromptPlan) -> None:
        if self.active is not None and rid == self.active.rid:
            self.s.inspector.set_prompt(plan.text, "Prompt sent for the reply being written")
            self._show_context(plan)

    def _on_prompt_progress(self, rid: int, done: int, total: int) -> None:
        if self.active is not None and rid == self.active.rid and total > 64:
            self._status("generating", f"Reading the prompt: {done} of {total} tokens")

    def _on_end(self, rid: int, error: str | None) -> None:
        if self.active is None or rid != self.active.rid:
            cid = self.detached.pop(rid, None)
            if cid is not None and self.conv is not None and self.conv.id == cid:
                self.conv = None  # the stopped reply is saved now: show it as it is
                self.open(cid)
            return
        active, self.active = self.active, None
        try:
            message = self.store.message(active.message_id)
        except ChatStoreError:
            message = None
        state = message.state if message else ("error" if error else "complete")
        stats = message.stats if message else {"error": error}
        if active.mode == "chat":
            self.s.messages.end_stream(state, stats, message.content if message else None)
        else:
            self.s.completion.end_stream(state, stats)
        if error:
            self._error(error)
        self.tps = stats.get("decode_tps") or self.tps
        self._set_busy(False)
        if self.conv is not None and self.conv.id == active.cid:
            self.conv = self.store.conversation(active.cid)
        self.refresh_list()
        self._check_timer.start()
        callbacks, self.after_reply = self.after_reply, []
        for callback in callbacks:
            callback()

    def _on_load_started(self, path: str) -> None:
        self.loading = Path(path).stem
        self.s.toolbar.show_loading(self.loading, 0.0)
        self.s.stop_action.setEnabled(True)
        self._status("loading", f"Loading {self.loading}…", 0.0)

    def _on_load_progress(self, fraction: float) -> None:
        if self.loading:
            self.s.toolbar.show_loading(self.loading, fraction)
            self._status("loading", f"Loading {self.loading}… {fraction:.0%}", fraction)

    def _on_loaded(self, model: LoadedModel) -> None:
        self.loading = None
        self.s.toolbar.show_loading(None)
        self.s.stop_action.setEnabled(self.active is not None)
        if model.fallback_reason:
            self.s.error_banner.show_message(model.fallback_reason, "info")
        self._status("generating" if self.active else "idle",
                     f"Loaded {model.path.stem} on {model.backend.upper()} in {model.load_s:.1f} s")
        self._check_timer.start()

    def _on_load_failed(self, message: str) -> None:
        self.loading = None
        self.s.toolbar.show_loading(None)
        self.s.stop_action.setEnabled(self.active is not None)
        if "cancelled" in message:
            self.s.error_banner.show_message("Loading the model was cancelled.", "info")
        else:
            self._error(message)
        self._status("error", message)

    # ------------------------------------------------------------------ context and preview
    def _check(self) -> None:
        """Preview the next prompt in the inspector; ask the worker how it fits the context."""
        conv, model = self.conv, self.model()
        if conv is None or model is None:
            return
        params = self.s.parameters.values()
        request = None
        if conv.mode == "chat":
            try:
                template = self._template_choice(model).template
            except (TemplateError, OSError, ValueError):
                return
            messages = resolve.history(self.store.messages(conv.id)) if conv.id else []
            draft = self.s.composer.text()
            if draft.strip():
                messages.append({"role": "user", "content": draft})
            stops = conv.options.get("stop")
            shown = stops if stops is not None else list(template.stop)
            self.s.inspector.set_stops(shown, stops is not None)
            try:
                text = render(template, messages, system=conv.system_prompt).text
            except TemplateError as exc:
                text = f"({exc})"
            self.s.inspector.set_prompt(text, "Next prompt (with your draft)")
            if messages:
                request = ReplyRequest(str(model.path), params=resolve.sampling_from(params),
                                       template=template, messages=tuple(messages),
                                       system=conv.system_prompt)
        else:
            text = self.s.completion.text()
            preset = self._preset()
            stops = conv.options.get("stop")
            self.s.inspector.set_stops(stops if stops is not None else
                                       list(preset.stop if preset else ()), stops is not None)
            self.s.inspector.set_prompt(text, "Prompt: the text in the editor, sent as is")
            if text.strip():
                request = ReplyRequest(str(model.path), params=resolve.sampling_from(params),
                                       prompt=text)
        loaded = self.worker.model
        if request is not None and loaded is not None and loaded.path == model.path \
                and self.active is None:
            self.worker.check_context(request)
        elif request is None:
            self.s.context_banner.hide()
            self.s.messages.set_dropped_turns(0)

    def _on_context(self, seq: int, result: PromptPlan | str) -> None:
        if seq != self.worker._check_seq or self.active is not None:
            return
        if isinstance(result, str):
            self.s.context_banner.show_message(result, "error")
            return
        self._show_context(result)

    def _show_context(self, plan: PromptPlan) -> None:
        used, n, reserve = plan.prompt_tokens, plan.n_ctx, plan.reserve
        self.s.inspector.set_tokens(f"{used} tokens of the {n}-token context; {reserve} kept "
                                    f"for the reply"
                                    + (f"; {plan.dropped_turns} oldest exchange(s) left out"
                                       if plan.dropped_turns else ""))
        mode = self.conv.mode if self.conv else "chat"
        self.s.messages.set_dropped_turns(plan.dropped_turns if mode == "chat" else 0)
        banner = self.s.context_banner
        if mode == "completion" and used + reserve > n:
            banner.show_message(f"The text ({used} tokens) and the reply ({reserve}) do not fit "
                                f"the context ({n} tokens): shorten the text, lower n_predict "
                                f"or raise the context size.", "warning")
        elif plan.dropped_turns:
            s = "s" if plan.dropped_turns > 1 else ""
            banner.show_message(f"This conversation is longer than the model's context ({n} "
                                f"tokens): its {plan.dropped_turns} oldest exchange{s} (faded "
                                f"above) will not be sent to the model.", "warning")
        elif used + reserve > 0.85 * n:
            banner.show_message(f"The context is nearly full: {used} tokens + {reserve} for the "
                                f"reply of {n}. Next, the oldest exchanges will be left out.",
                                "warning")
        else:
            banner.hide()
