"""The prompt inspector: the exact text sent to the model, its stop strings and token count,
the template and why it was chosen, and the conversation's system prompt. The text can be
overridden for the next reply, and the stop strings for the conversation. A view of the chat
session."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton,
                               QSizePolicy, QVBoxLayout, QWidget)

from app.gui.chat.style import muted

if TYPE_CHECKING:
    from app.gui.chat.next_prompt import PromptView
    from app.gui.chat.session import ChatSession
    from app.gui.chat.template_part import TemplatesView

_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\"}


def encode_stops(stops: list[str] | tuple[str, ...]) -> str:
    """One stop string per line, with newlines and tabs written as \\n and \\t."""
    return "\n".join(s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
                     for s in stops)


def decode_stops(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        chars, i = [], 0
        while i < len(line):
            if line[i] == "\\" and i + 1 < len(line) and line[i + 1] in _ESCAPES:
                chars.append(_ESCAPES[line[i + 1]])
                i += 2
            else:
                chars.append(line[i])
                i += 1
        if chars:
            out.append("".join(chars))
    return out


class PromptInspector(QWidget):
    systemChanged = Signal(object)    # str, or None for the template's default
    stopsChanged = Signal(object)     # list[str], or None for the template's
    overrideChanged = Signal(object)  # str: send this text next; None: render normally

    def __init__(self, session: "ChatSession", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 12, 12, 12)
        lay.setSpacing(6)
        self.template_label = QLabel()
        self.template_label.setWordWrap(True)
        self.template_label.setTextFormat(Qt.TextFormat.PlainText)
        self.template_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay.addWidget(self.template_label)
        self.rule_label = muted(QLabel())
        self.rule_label.setWordWrap(True)
        self.rule_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay.addWidget(self.rule_label)

        self.system_label = QLabel("System prompt")
        lay.addWidget(self.system_label)
        self.system = QPlainTextEdit()
        self.system.setMaximumHeight(72)
        self.system.setTabChangesFocus(True)
        lay.addWidget(self.system)
        self._system_timer = QTimer(self, singleShot=True, interval=400)
        self._system_timer.timeout.connect(self._system_done)
        self.system.textChanged.connect(lambda: self._quiet or self._system_timer.start())

        head = QHBoxLayout()
        self.caption = QLabel("Prompt")
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        head.addWidget(self.caption, 1)
        self.override = QCheckBox("Edit")
        self.override.setToolTip("Send this exact text for the next reply instead of the "
                                 "template's rendering (used once)")
        self.override.toggled.connect(self._override_toggled)
        head.addWidget(self.override)
        lay.addLayout(head)
        self.prompt = QPlainTextEdit(readOnly=True)
        self.prompt.setFont(mono)
        self.prompt.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        lay.addWidget(self.prompt, 1)
        self._override_timer = QTimer(self, singleShot=True, interval=400)
        self._override_timer.timeout.connect(
            lambda: self.override.isChecked() and self.overrideChanged.emit(self.prompt.toPlainText()))
        self.prompt.textChanged.connect(lambda: self._quiet or self._override_timer.start())
        # What the rendering had to change, e.g. a system prompt the model's template has no
        # place for, moved into the first user message.
        self.notes = muted(QLabel())
        self.notes.setWordWrap(True)
        self.notes.setTextFormat(Qt.TextFormat.PlainText)
        self.notes.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.notes.hide()
        lay.addWidget(self.notes)
        self.tokens = muted(QLabel())
        self.tokens.setWordWrap(True)
        self.tokens.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay.addWidget(self.tokens)

        stop_head = QHBoxLayout()
        stop_label = QLabel("Stop strings")
        stop_label.setToolTip("One a line; write \\n for a newline and \\t for a tab")
        stop_head.addWidget(stop_label, 1)
        self.stop_reset = QPushButton("Reset")
        self.stop_reset.setToolTip("Use the template's stop strings")
        self.stop_reset.clicked.connect(lambda: self.stopsChanged.emit(None))
        stop_head.addWidget(self.stop_reset)
        lay.addLayout(stop_head)
        self.stops = QPlainTextEdit()
        self.stops.setFont(mono)
        self.stops.setMaximumHeight(64)
        self.stops.setTabChangesFocus(True)
        lay.addWidget(self.stops)
        self._stops_timer = QTimer(self, singleShot=True, interval=500)
        self._stops_timer.timeout.connect(
            lambda: self.stopsChanged.emit(decode_stops(self.stops.toPlainText())))
        self.stops.textChanged.connect(lambda: self._quiet or self._stops_timer.start())
        self._quiet = False
        self.systemChanged.connect(session.set_system)
        self.stopsChanged.connect(session.set_stops)
        self.overrideChanged.connect(session.set_prompt_override)
        session.templatesShown.connect(self._templates)
        session.promptShown.connect(self._prompt)
        session.contextShown.connect(lambda view: self.set_tokens(view.tokens))
        session.opened.connect(self._opened)
        session.changed.connect(self._changed)

    # ------------------------------------------------------------------ the session's events
    def _templates(self, view: "TemplatesView") -> None:
        self.set_template(view.name, view.reason)
        self.set_system(view.system, view.system_default)

    def _prompt(self, view: "PromptView") -> None:
        self.set_prompt(view.text, view.caption)
        self.set_notes(view.notes)
        if view.stops is not None:
            self.set_stops(view.stops, view.stops_overridden)
        # A prompt shown cut (a huge paste) cannot be edited and sent back whole.
        self.override.setEnabled(not view.cut or self.override.isChecked())

    def _opened(self, conv, _messages) -> None:
        self.set_chat_mode(conv.mode == "chat")
        if conv.mode == "chat":
            self.set_override(conv.options.get("prompt_override"))

    def _changed(self, conv) -> None:
        if "prompt_override" not in conv.options and self.override.isChecked():
            self.set_override(None)  # used for the reply just sent

    # ------------------------------------------------------------------ showing
    def set_template(self, name: str, rule: str) -> None:
        self.template_label.setText(f"Template: {name}")
        self.rule_label.setText(rule)

    def set_system(self, text: str | None, default: str) -> None:
        self._quiet = True
        self.system.setPlainText(text or "")
        self.system.setPlaceholderText(f"Template default: {default}" if default
                                       else "None (the template has no default)")
        self._quiet = False

    def set_prompt(self, text: str, caption: str) -> None:
        if self.override.isChecked():
            return  # the user's text stays until it is used or unticked
        self._quiet = True
        self.prompt.setPlainText(text)
        self._quiet = False
        self.caption.setText(caption)

    def set_notes(self, notes: list[str] | tuple[str, ...]) -> None:
        self.notes.setText("\n".join(f"Note: {note}" for note in notes))
        self.notes.setVisible(bool(notes))

    def set_tokens(self, text: str) -> None:
        self.tokens.setText(text)

    def set_stops(self, stops: list[str] | tuple[str, ...], overridden: bool) -> None:
        if self.stops.hasFocus():
            return
        self._quiet = True
        self.stops.setPlainText(encode_stops(stops))
        self._quiet = False
        self.stop_reset.setEnabled(overridden)

    def set_override(self, text: str | None) -> None:
        self._quiet = True
        self.override.blockSignals(True)
        self.override.setChecked(text is not None)
        self.override.blockSignals(False)
        self.prompt.setReadOnly(text is None)
        if text is not None:
            self.prompt.setPlainText(text)
            self.caption.setText("Prompt (your text, sent as is for the next reply)")
        self._quiet = False

    def set_chat_mode(self, chat: bool) -> None:
        """Completion mode sends the editor's text as is: no system prompt, no override."""
        for widget in (self.override, self.system_label, self.system):
            widget.setVisible(chat)

    # ------------------------------------------------------------------ edits
    def _system_done(self) -> None:
        text = self.system.toPlainText()
        self.systemChanged.emit(text if text.strip() else None)

    def _override_toggled(self, on: bool) -> None:
        self.prompt.setReadOnly(not on)
        self.overrideChanged.emit(self.prompt.toPlainText() if on else None)
