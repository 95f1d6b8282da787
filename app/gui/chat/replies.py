"""The turns of a conversation, for the chat session: send, the reply streaming in, Stop,
Regenerate, Edit and resend, completion runs, and the engine worker's signals about them.

`Replies` is a part of `ChatSession` (session.py) with the session as its one dependency: it
reads the session's state through its public attributes and tells the views through the
session's signals. Each reply is a turn of the core pipeline (app.core.turns) run by the
EngineWorker on its thread, on the engine or on a registered server (SERVER/MODEL).

An error is said once: a reply's failure (a load that failed, a server down or refusing the
key, a dropped connection) is saved with the reply and shown in its footer with the partial
text kept; only what cannot be saved there reaches the session's `problem`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject

from app.core.chats import DEFAULT_TITLE, ChatStoreError, Conversation, Message
from app.core.turns import PreparedTurn, TemplateChoice, TurnOptions, TurnRequest
from app.gui.chat.style import stats_line
from app.gui.chat.template_part import CHOICE_ERRORS

BIG_DRAFT = 16_000  # characters: a draft this long is sent only once it is known to fit

if TYPE_CHECKING:
    from app.gui.chat.model_choices import ModelEntry
    from app.gui.chat.session import ChatSession


@dataclass
class Active:
    """The reply being written: its request id, conversation, message and mode."""

    rid: int
    cid: int
    message_id: int
    mode: str


class Replies(QObject):
    def __init__(self, session: "ChatSession") -> None:
        super().__init__(session)
        self.session = session
        self.active: Active | None = None
        self.detached: dict[int, int] = {}  # rid → conversation of replies stopped by a switch
        self.after_reply: list[Callable[[], None]] = []
        self.editing_id: int | None = None
        w = session.worker
        w.tokens.connect(self._tokens)
        w.promptReady.connect(self._prepared)
        w.promptProgress.connect(self._progress)
        w.finished.connect(lambda rid, _result: self._ended(rid, None))
        w.failed.connect(self._ended)

    # ------------------------------------------------------------------ editing
    def edit(self, message_id: int) -> None:
        if self.active is None:
            self.editing_id = message_id
            self.session.editing.emit(message_id,
                                      self.session.store.message(message_id).content)

    def cancel_edit(self) -> None:
        if self.editing_id is not None:
            self.editing_id = None
            self.session.editing.emit(None, "")

    # ------------------------------------------------------------------ chat turns
    def ready(self) -> tuple["ModelEntry", TemplateChoice | None] | None:
        """The model and template of the next turn, or None (and the reason said)."""
        s = self.session
        entry = s.model()
        if entry is None:
            if not s.models.entries():
                s.say("Add a model first: download one from the catalog or import a GGUF file "
                      "in the Library.")
                s.libraryWanted.emit()
            else:
                s.say("Choose a model for this conversation in the bar above.")
            return None
        try:
            return entry, s.templates.choice(entry)
        except CHOICE_ERRORS as exc:
            s.say(f"Cannot use {entry.id}: {exc}")
            return None

    def send(self, text: str) -> bool:
        """Send `text` (or, while editing, replace the edited message and what follows it);
        False when nothing was sent (the composer keeps the text)."""
        s = self.session
        if self.active is not None or s.conv is None or s.conv.mode != "chat" \
                or not text.strip():
            return False
        refusal = s.next_prompt.refusal(text)
        if refusal is not None:  # it cannot fit: kept in the composer, said there
            s.draftRefused.emit(refusal)
            return False
        entry = s.model()
        if len(text) > BIG_DRAFT and entry is not None and not entry.remote \
                and not s.next_prompt.fits(text):
            s.next_prompt.send_when_checked(text)  # sent, or said, once checked
            return False
        ready = self.ready()
        if ready is None:
            return False
        s.knobs.flush()
        conv = s.ensure_saved()
        editing, self.editing_id = self.editing_id, None
        if editing is not None:
            s.store.update_message(editing, content=text)
            s.store.delete_messages_from(conv.id, editing + 1)
            s.messagesRemoved.emit(editing + 1)
            s.messageEdited.emit(editing, text)
        else:
            s.messageAdded.emit(s.store.add_message(conv.id, "user", text), "You")
        s.draft = ""
        s.draftSent.emit()
        s.reload()
        self._start_reply(ready)
        return True

    def _start_reply(self, ready: tuple["ModelEntry", TemplateChoice | None] | None = None
                     ) -> None:
        s = self.session
        ready = ready or self.ready()
        if ready is None or s.conv is None:
            return
        entry, choice = ready
        conv, knobs = s.conv, dict(s.knobs.values)
        override = conv.options.get("prompt_override")
        if override is not None:
            s.set_prompt_override(None)
        writer = s.store.begin_reply(conv.id, stats={
            "model": entry.id, "template": choice.template.id if choice else "server",
            "params": knobs})
        request = chat_request(entry, conv, history(s.store.messages(conv.id)), knobs,
                               prompt=override,
                               add_bos=choice.template.add_bos if choice else True)
        s.replyStarted.emit("chat", s.store.message(writer.message_id), entry.id)
        self._begin(request, writer, "chat")

    def _begin(self, request: TurnRequest, writer: Any, mode: str) -> None:
        s = self.session
        s.problemCleared.emit()
        rid = s.worker.generate(request, writer)
        assert s.conv is not None
        self.active = Active(rid, s.conv.id, writer.message_id, mode)
        s.busyChanged.emit(True)
        s.show_status("generating")
        s.listChanged.emit()

    def regenerate_last(self) -> None:
        last = next((m for m in reversed(self.session.messages()) if m.role == "assistant"),
                    None)
        if last is not None:
            self.regenerate(last.id)

    def regenerate(self, message_id: int) -> None:
        s = self.session
        if self.active is not None or s.conv is None or not s.conv.id:
            return
        if not any(m.role == "user" and m.id < message_id for m in s.messages()):
            return
        s.store.delete_messages_from(s.conv.id, message_id)
        s.messagesRemoved.emit(message_id)
        self._start_reply()

    def stop(self) -> None:
        """End the reply or the model load now, at whatever stage it is."""
        if self.session.can_stop:
            self.session.worker.stop()

    def detach(self) -> None:
        """Leave a running reply (another conversation is opened): stop it; the worker still
        saves what it wrote."""
        s = self.session
        s.knobs.flush()
        self.cancel_edit()
        if self.active is not None:
            self.detached[self.active.rid] = self.active.cid
            s.worker.stop()
            if self.active.mode == "chat":
                s.replyEnded.emit("chat", "interrupted",
                                  {"stop_reason": "cancelled", "stopped_by": "user"}, None)
            self.active = None
            s.busyChanged.emit(False)

    # ------------------------------------------------------------------ completion mode
    def run_completion(self, text: str) -> None:
        s = self.session
        if self.active is not None or s.conv is None or s.conv.mode != "completion":
            return
        if ">PROMPT" in text:
            s.completionText.emit(text)  # the editor selects the placeholder
            return s.say("Replace >PROMPT with your text first (it is selected).")
        ready = self.ready()
        if ready is None or not text.strip():
            return
        entry = ready[0]
        s.knobs.flush()
        was_untitled = s.conv.id == 0 or s.conv.title == DEFAULT_TITLE
        conv = s.ensure_saved()
        preset = s.templates.preset()
        s.store.add_message(conv.id, "user", text)
        if was_untitled:
            title = completion_title(text, preset.preset if preset else None)
            s.store.rename(conv.id, title[:60] if title else "Completion")
        s.reload()
        knobs = dict(s.knobs.values)
        stops = conv.options.get("stop")
        if stops is None:
            stops = list(preset.stop) if preset else []
        writer = s.store.begin_reply(conv.id, stats={
            "model": entry.id, "template": preset.id if preset else "raw", "params": knobs})
        s.replyStarted.emit("completion", None, entry.id)
        self._begin(completion_request(entry, text, knobs, stops), writer, "completion")

    # ------------------------------------------------------------------ the worker's signals
    def _tokens(self, rid: int, text: str) -> None:
        if self.active is not None and rid == self.active.rid:
            self.session.replyGrew.emit(text)

    def _prepared(self, rid: int, turn: PreparedTurn) -> None:
        if self.active is not None and rid == self.active.rid:
            self.session.next_prompt.show_sent(turn, self.active.message_id)

    def _progress(self, rid: int, done: int, total: int) -> None:
        if self.active is not None and rid == self.active.rid and total > 64:
            self.session.show_status("generating",
                                     f"Reading the prompt: {done} of {total} tokens")

    def _ended(self, rid: int, error: str | None) -> None:
        s = self.session
        if self.active is None or rid != self.active.rid:
            cid = self.detached.pop(rid, None)
            if cid is not None and s.conv is not None and s.conv.id == cid:
                s.conv = None  # the stopped reply is saved now: show it as it is
                s.open(cid)
            return
        active, self.active = self.active, None
        try:
            message = s.store.message(active.message_id)
        except ChatStoreError:
            message = None
        state = message.state if message else ("error" if error else "complete")
        stats = message.stats if message else {"error": error}
        s.replyEnded.emit(active.mode, state, stats, message.content if message else None)
        if error and not stats.get("error"):  # not in the reply's footer: said here, once
            s.say(error)
        s.tps = stats.get("decode_tps") or s.tps
        s.busyChanged.emit(False)
        s.show_status("idle")
        if s.conv is not None and s.conv.id == active.cid:
            s.reload()
        s.listChanged.emit()
        s.next_prompt.schedule()
        callbacks, self.after_reply = self.after_reply, []
        for callback in callbacks:
            callback()


# ---------------------------------------------------------------------- requests (no Qt)
def history(messages: list[Message]) -> list[dict[str, str]]:
    """The messages a prompt is made of: failed and empty replies are left out."""
    return [{"role": m.role, "content": m.content} for m in messages
            if m.state != "error" and (m.content or m.role == "user")]


def chat_request(entry: "ModelEntry", conv: Conversation, messages: list[dict[str, str]],
                 knobs: dict[str, Any], *, prompt: str | None = None,
                 add_bos: bool = True) -> TurnRequest:
    """A chat turn of `conv` (its template choice, system prompt, stop strings and knobs) on
    `entry`; `prompt`: the inspector's edited text, sent as it is."""
    stops = conv.options.get("stop")
    return TurnRequest(entry.ref(), messages=tuple(messages), prompt=prompt, add_bos=add_bos,
                       options=TurnOptions(template=conv.template_id, system=conv.system_prompt,
                                           stop=tuple(stops) if stops is not None else None,
                                           overrides=knobs))


def completion_request(entry: "ModelEntry", text: str, knobs: dict[str, Any],
                       stops: list[str] | None = None) -> TurnRequest:
    """The completion editor's text, sent as it is."""
    return TurnRequest(entry.ref(), prompt=text, options=TurnOptions(
        stop=tuple(stops) if stops is not None else None, overrides=knobs))


def completion_title(text: str, preset: str | None) -> str | None:
    """A completion's title: its first line that is not part of the preset."""
    skip = {ln.strip() for ln in (preset or "").splitlines()}
    for line in text.splitlines():
        if line.strip() and line.strip() not in skip:
            return line.strip()
    return None


def completion_content(messages: list[Message]) -> tuple[str, str, str]:
    """(prompt, completion, its stats line) of a completion conversation: its last run."""
    prompt = next((m for m in reversed(messages) if m.role == "user"), None)
    reply = next((m for m in messages if prompt and m.id > prompt.id and m.role == "assistant"),
                 None)
    return (prompt.content if prompt else "", reply.content if reply else "",
            stats_line(reply.stats, reply.state) if reply else "")
