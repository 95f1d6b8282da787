"""The next prompt, before it is sent: what the inspector previews (rendered off the GUI
thread) and how it fits the model's context (asked of the engine worker, which answers a
PreparedTurn or why it cannot fit, without tokenizing more than the context can hold).

A part of `ChatSession` (session.py), with the session as its one dependency. What it finds
goes out as the session's `promptShown(PromptView)` and `contextShown(ContextView)`:

- a draft that cannot fit the context (a huge paste) gets a warning in the composer before it
  is sent — its token count ("at least N" when counted from its bytes alone) and what will
  happen — and `refusal(text)` keeps Send from sending it; a draft over BIG_DRAFT characters
  sent before its check answered is sent once the answer says it fits (`send_when_checked`),
  so a paste that cannot fit is never saved into the conversation;
- an older conversation longer than the context fades the exchanges that will be left out;
- nothing at all is said about an empty composer (no banner over a conversation at rest).

A draft over BIG_DRAFT characters is checked even before the model is loaded: the model is
loaded for it, as sending would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer

from app.core.templates import ContextOverflow
from app.core.turns import PreparedTurn, TemplateChoice, TurnRequest, render_turn
from app.gui import background
from app.gui.chat.replies import BIG_DRAFT, chat_request, completion_request, history
from app.gui.chat.template_part import CHOICE_ERRORS

if TYPE_CHECKING:
    from app.gui.chat.model_choices import ModelEntry
    from app.gui.chat.session import ChatSession

PREVIEW_CHARS = 120_000   # the inspector shows at most this much of a prompt (head and tail)
SENT_KEPT = 50            # the prompts of this many recent replies are kept for "Show prompt"


@dataclass(frozen=True)
class PromptView:
    text: str
    caption: str
    notes: tuple[str, ...] = ()
    stops: tuple[str, ...] | None = None    # None: leave the stop strings shown as they are
    stops_overridden: bool = False
    cut: bool = False                        # `text` is the prompt's head and tail only


@dataclass(frozen=True)
class ContextView:
    tokens: str = ""             # the inspector's line: tokens used, kept for the reply, cut
    dropped: int = 0             # the oldest exchanges that will be left out (chat mode)
    banner: str | None = None    # over the conversation
    kind: str = "warning"
    warning: str | None = None   # in the composer: the draft cannot fit


def shorten(text: str) -> tuple[str, bool]:
    if len(text) <= PREVIEW_CHARS:
        return text, False
    head, tail = text[:PREVIEW_CHARS * 2 // 3], text[-PREVIEW_CHARS // 3:]
    hidden = len(text) - len(head) - len(tail)
    return f"{head}\n\n[… {hidden:,} characters not shown here …]\n\n{tail}", True


def overflow_warning(exc: ContextOverflow) -> str:
    """The composer's words for a draft that cannot fit."""
    least = "" if exc.exact else "at least "
    return (f"Too long for this model: your message is {least}{exc.prompt_tokens:,} tokens, "
            f"and the context holds {exc.n_ctx:,} ({exc.reserve:,} kept for the reply). It "
            f"will not be sent as it is: shorten it, or raise the context size in Parameters.")


def context_view(turn: PreparedTurn, mode: str) -> ContextView:
    """How a prepared turn fits: the inspector's line, the faded exchanges, the banner."""
    used, n, reserve = turn.prompt_tokens, turn.n_ctx, turn.reserve
    if used is None or not n:  # a server counts its own tokens
        return ContextView()
    dropped = turn.dropped_turns if mode == "chat" else 0
    tokens = (f"{used} tokens of the {n}-token context; {reserve} kept for the reply"
              + (f"; {dropped} oldest exchange(s) left out" if dropped else ""))
    banner = None
    if mode == "completion" and used + reserve > n:
        banner = (f"The text ({used} tokens) and the reply ({reserve}) do not fit the context "
                  f"({n} tokens): shorten the text, lower n_predict or raise the context size.")
    elif dropped:
        s = "s" if dropped > 1 else ""
        banner = (f"This conversation is longer than the model's context ({n} tokens): its "
                  f"{dropped} oldest exchange{s} (faded above) will not be sent to the model.")
    elif used + reserve > 0.85 * n:
        banner = (f"The context is nearly full: {used} tokens + {reserve} for the reply of {n}. "
                  f"Next, the oldest exchanges will be left out.")
    return ContextView(tokens, dropped, banner)


def messages_text(messages: list[dict[str, str]] | tuple) -> str:
    """A server's turn as the inspector shows it: the messages it is sent."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


class NextPrompt(QObject):
    def __init__(self, session: "ChatSession") -> None:
        super().__init__(session)
        self.session = session
        self._timer = QTimer(self, singleShot=True, interval=150)
        self._timer.timeout.connect(self._run)
        self._rendering = 0                           # the latest preview asked for
        self._asked: tuple[int, str, str] | None = None   # (seq, draft, mode) of the check
        self.refused: tuple[str, str] | None = None   # (draft, why) it cannot fit
        self.fitting: str | None = None               # the draft last found to fit
        self.waiting: str | None = None               # a draft to send once checked
        self.sent: dict[int, PreparedTurn] = {}       # reply id → its turn (the latest ones)
        session.worker.contextChecked.connect(self._answer)

    def schedule(self) -> None:
        """Preview and check again shortly (a burst of edits makes one check)."""
        self._timer.start()

    def refusal(self, text: str) -> str | None:
        """Why `text` cannot be sent, when the latest check of exactly it said so."""
        return self.refused[1] if self.refused and self.refused[0] == text else None

    def fits(self, text: str) -> bool:
        """Whether the latest check of exactly `text` found that it fits."""
        return self.fitting == text

    def send_when_checked(self, text: str) -> None:
        """Check `text` now; send it when the answer says it fits, else say why not."""
        self.waiting = self.session.draft = text
        self._timer.stop()
        self._run()

    # ------------------------------------------------------------------ the preview
    def _run(self) -> None:
        s = self.session
        conv, entry = s.conv, s.model()
        if conv is None or entry is None:
            self.refused = None
            s.contextShown.emit(ContextView())
            return
        draft = s.draft if conv.mode == "chat" else s.completion_draft
        stops = conv.options.get("stop")
        request: TurnRequest | None
        if conv.mode == "chat":
            messages = history(s.messages())
            if draft.strip():
                messages.append({"role": "user", "content": draft})
            request = self._preview(entry, conv, messages, "Next prompt (with your draft)",
                                    f"Messages for {entry.group} (it applies its own template)")
            if request is None:
                return
            if not messages:
                request = None
        else:
            preset = s.templates.preset()
            shown = tuple(stops) if stops is not None else tuple(preset.stop if preset else ())
            text, cut = shorten(draft)
            s.promptShown.emit(PromptView(text, "Prompt: the text in the editor, sent as is",
                                          (), shown, stops is not None, cut))
            request = completion_request(entry, draft, dict(s.knobs.values)) if draft.strip() else None
        self._check(entry, request, draft, conv.mode)

    def _render(self, request: TurnRequest, choice: TemplateChoice, stops: tuple[str, ...],
                overridden: bool, caption: str = "Next prompt (with your draft)") -> None:
        """Render the next prompt off the GUI thread (a long chat, a huge paste, a model's own
        template in its child process); only the latest rendering is shown."""
        self._rendering += 1
        ticket = self._rendering

        def work() -> tuple[int, PromptView]:
            try:
                rendered = render_turn(request, choice)
            except Exception as exc:  # noqa: BLE001 - shown in the preview, never lost
                return ticket, PromptView(f"({exc})", caption, (), stops, overridden)
            text, cut = shorten(rendered.text)
            return ticket, PromptView(text, caption, tuple(rendered.notes), stops, overridden,
                                      cut)

        # A bound method: dropped by PySide if the screen is gone when the rendering ends.
        background.run(work, done=self._rendered)

    def _rendered(self, result: tuple[int, PromptView]) -> None:
        ticket, view = result
        if ticket == self._rendering:
            self.session.promptShown.emit(view)

    # ------------------------------------------------------------------ the context
    def _check(self, entry: "ModelEntry", request: TurnRequest | None, draft: str,
               mode: str) -> None:
        s = self.session
        if request is None:
            self.refused = None
            s.contextShown.emit(ContextView())
            return
        if entry.remote or s.busy:
            return
        loaded = s.worker.model
        if loaded is not None and entry.path is not None and loaded.path == entry.path:
            self._asked = (s.worker.check_context(request), draft, mode)
        elif len(draft) > BIG_DRAFT and s.loading is None:
            s.load_model()  # what sending would do; checked once it is loaded

    def _answer(self, seq: int, result: object) -> None:
        s = self.session
        if self._asked is None or seq != self._asked[0] or s.busy:
            return
        _, draft, mode = self._asked
        typed = bool(draft.strip())
        self.refused = self.fitting = None
        if isinstance(result, PreparedTurn):
            self.fitting = draft if mode == "chat" else None
            s.contextShown.emit(context_view(result, mode))
        elif isinstance(result, ContextOverflow):
            if mode == "chat":
                warning = overflow_warning(result) if typed else None
                if warning:
                    self.refused = (draft, warning)
                s.contextShown.emit(ContextView(tokens=str(result), warning=warning))
            else:
                s.contextShown.emit(ContextView(tokens=str(result),
                                                banner=str(result) if typed else None))
        else:  # the next prompt cannot be made (a template error…): said while one is typed
            s.contextShown.emit(ContextView(tokens=str(result),
                                            banner=str(result) if typed else None,
                                            kind="error"))
        if self.waiting is not None and self.waiting == draft and mode == "chat":
            self.waiting = None
            if self.refused is not None:
                s.draftRefused.emit(self.refused[1])
            else:  # it fits (or cannot be made: the reply will say why)
                self.fitting = draft
                s.send(draft)

    def show_sent(self, turn: PreparedTurn, message_id: int | None = None) -> None:
        """The turn the reply being written was prepared from (kept for "Show prompt")."""
        s = self.session
        if message_id is not None:
            self.sent[message_id] = turn
            while len(self.sent) > SENT_KEPT:
                self.sent.pop(next(iter(self.sent)))
        s.promptShown.emit(self._sent_view(turn, "Prompt sent for the reply being written"))
        s.contextShown.emit(context_view(turn, turn.mode))

    def _sent_view(self, turn: PreparedTurn, caption: str) -> PromptView:
        conv = self.session.conv
        stops = conv.options.get("stop") if conv else None
        text = turn.text if turn.text is not None else messages_text(turn.messages)
        shown, cut = shorten(text)
        return PromptView(shown, caption, tuple(turn.notes), tuple(turn.stop),
                          stops is not None, cut)

    def show_for(self, message_id: int) -> None:
        """A reply's "Show prompt": exactly what was sent for it when it was written since
        the window opened; else the messages before it rendered again now, and said so."""
        s = self.session
        turn = self.sent.get(message_id)
        if turn is not None:
            s.promptShown.emit(self._sent_view(turn, "Prompt sent for this reply"))
            return
        entry, conv = s.model(), s.conv
        before = [m for m in s.messages() if m.id < message_id]
        if entry is None or conv is None or not before:
            return
        self._preview(entry, conv, history(before),
                      "This reply's conversation, rendered again now (not fitted)",
                      "Messages before this reply")

    def _preview(self, entry: "ModelEntry", conv, messages: list[dict[str, str]],
                 caption: str, remote_caption: str) -> TurnRequest | None:
        """Show `messages` as a turn would send them (rendered off the GUI thread); the
        request, or None for a server's model (it renders them itself) or a template error."""
        s = self.session
        stops = conv.options.get("stop")
        if entry.remote:
            text, cut = shorten(messages_text(messages))
            s.promptShown.emit(PromptView(text, remote_caption, (),
                                          tuple(stops) if stops is not None else (),
                                          stops is not None, cut))
            return None
        try:
            choice = s.templates.choice(entry)
        except CHOICE_ERRORS:  # said when it is sent (a model file gone: the library is read again)
            return None
        assert choice is not None
        request = chat_request(entry, conv, messages, dict(s.knobs.values))
        shown = tuple(stops) if stops is not None else tuple(choice.template.stop)
        self._render(request, choice, shown, stops is not None, caption)
        return request
