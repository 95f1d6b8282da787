"""Turns of a conversation: send, the reply streaming in, Stop, Regenerate, Edit and resend,
completion runs, and the engine worker's signals. A mixin of ChatController (controller.py).

Every user message is saved when it is sent; a reply is saved as it grows by its ReplyWriter in
the worker thread and read back from the store when it ends, so what the view shows after a
reply is what a restart shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.chats import DEFAULT_TITLE, ChatStoreError
from app.core.engine import LoadedModel
from app.core.library import LocalModel
from app.core.templates import PromptTemplate, TemplateError
from app.gui.chat import resolve
from app.gui.chat.resolve import TemplateChoice
from app.core.turns import PreparedTurn, TurnRequest
from app.gui.chat.style import stats_line


@dataclass
class Active:
    """The reply being written: its request id, conversation, message and mode."""

    rid: int
    cid: int
    message_id: int
    mode: str


class TurnsMixin:
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
        ready = self._ready()
        if ready is None:
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
        self._start_reply(ready)

    def _start_reply(self, ready: tuple[LocalModel, TemplateChoice] | None = None) -> None:
        ready = ready or self._ready()
        if ready is None or self.conv is None:
            return
        model, choice = ready
        conv = self.conv
        params = self.s.parameters.values()
        override = conv.options.get("prompt_override")
        if override is not None:
            self._set_options(prompt_override=None)
            self.s.inspector.set_override(None)
        messages = resolve.history(self.store.messages(conv.id))
        writer = self.store.begin_reply(conv.id, stats={
            "model": model.id, "template": choice.template.id, "params": params})
        request = resolve.chat_request(model, conv, messages, params, prompt=override,
                                       add_bos=choice.template.add_bos)
        self.s.messages.begin_stream(self.store.message(writer.message_id), model.id)
        self._begin(request, writer, "chat")

    def _begin(self, request: TurnRequest, writer, mode: str) -> None:
        self.s.error_banner.hide()
        message_id = writer.message_id
        rid = self.worker.generate(request, writer)
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
        self._settings_thread.shutdown(wait=True)  # the model settings are on disk
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
        request = resolve.completion_request(model, text, params, stops)
        self.s.completion.begin_stream()
        self._begin(request, writer, "completion")

    # ------------------------------------------------------------------ worker signals
    def _on_tokens(self, rid: int, text: str) -> None:
        if self.active is not None and rid == self.active.rid:
            if self.active.mode == "chat":
                self.s.messages.append(text)
            else:
                self.s.completion.append(text)

    def _on_prompt(self, rid: int, plan: PreparedTurn) -> None:
        if self.active is not None and rid == self.active.rid:
            self.s.inspector.set_prompt(plan.text, "Prompt sent for the reply being written")
            stops = self.conv.options.get("stop") if self.conv else None
            self.s.inspector.set_stops(list(plan.stop), stops is not None)
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
