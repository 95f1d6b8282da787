"""The prompt preview and the context warning: what the next reply's prompt will be, how many
tokens it takes, and which oldest exchanges will be left out. A mixin of ChatController."""

from __future__ import annotations

from app.core.templates import TemplateError
from app.core.turns import PreparedTurn, render_turn
from app.gui.chat import resolve


class ContextMixin:
    def _check(self) -> None:
        """Preview the next prompt in the inspector; ask the worker how it fits the context."""
        conv, model = self.conv, self.model()
        if conv is None or model is None:
            return
        params = self.s.parameters.values()
        request = None
        if conv.mode == "chat":
            try:
                choice = self._template_choice(model)
            except (TemplateError, OSError, ValueError):
                return
            messages = resolve.history(self.store.messages(conv.id)) if conv.id else []
            draft = self.s.composer.text()
            if draft.strip():
                messages.append({"role": "user", "content": draft})
            stops = conv.options.get("stop")
            shown = stops if stops is not None else list(choice.template.stop)
            self.s.inspector.set_stops(shown, stops is not None)
            request = resolve.chat_request(model, conv, messages, params)
            notes: tuple[str, ...] = ()
            try:
                rendered = render_turn(request, choice)
                text, notes = rendered.text, rendered.notes
            except TemplateError as exc:
                text = f"({exc})"
            self.s.inspector.set_prompt(text, "Next prompt (with your draft)")
            self.s.inspector.set_notes(notes)
            if not messages:
                request = None
        else:
            text = self.s.completion.text()
            preset = self._preset()
            stops = conv.options.get("stop")
            self.s.inspector.set_stops(stops if stops is not None else
                                       list(preset.stop if preset else ()), stops is not None)
            self.s.inspector.set_prompt(text, "Prompt: the text in the editor, sent as is")
            self.s.inspector.set_notes(())
            if text.strip():
                request = resolve.completion_request(model, text, params)
        loaded = self.worker.model
        if request is not None and loaded is not None and loaded.path == model.path \
                and self.active is None:
            self.worker.check_context(request)
        elif request is None:
            self.s.context_banner.hide()
            self.s.messages.set_dropped_turns(0)

    def _on_context(self, seq: int, result: PreparedTurn | str) -> None:
        if seq != self.worker._check_seq or self.active is not None:
            return
        if isinstance(result, str):
            self.s.context_banner.show_message(result, "error")
            return
        self._show_context(result)

    def _show_context(self, plan: PreparedTurn) -> None:
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
