"""Completion mode (Dalai's): one editable text where the prompt and the streamed completion
flow together. A Dalai prompt preset fills the text with its `>PROMPT` placeholder selected, so
typing replaces it. Ctrl+Enter (or Go) continues the text; Esc stops. A view of the chat
session."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent, QPalette, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPlainTextEdit,
                               QPushButton, QVBoxLayout, QWidget)
from superqt import QElidingLabel

from app.gui.chat.message_view import COLUMN_WIDTH
from app.gui.chat.style import elastic_combo, muted, stats_line

if TYPE_CHECKING:
    from app.gui.chat.session import ChatSession

PLACEHOLDER = ">PROMPT"


class _Editor(QPlainTextEdit):
    runRequested = Signal()
    escaped = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and \
                event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.runRequested.emit()
            return
        if event.key() == Qt.Key.Key_Escape:
            self.escaped.emit()
            return
        super().keyPressEvent(event)


class CompletionView(QWidget):
    runRequested = Signal()
    stopRequested = Signal()
    presetChosen = Signal(str)   # template id ("" = blank)
    textEdited = Signal(str)

    def __init__(self, session: "ChatSession", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.busy = False
        self.streaming = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(16, 12, 16, 12)
        lay.setSpacing(8)
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Prompt preset:"))
        self.presets = elastic_combo(16, 320)
        self.presets.activated.connect(self._preset)
        bar.addWidget(self.presets, 2)
        # Elided ("Ctrl+Enter continues…") rather than clipped when the column is narrow.
        self.hint = muted(QElidingLabel("Ctrl+Enter continues the text · Esc stops"))
        self.hint.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.hint.setToolTip(self.hint.text())
        bar.addWidget(self.hint, 1)
        self.go = QPushButton("Go")
        self.go.setMinimumWidth(84)
        self.go.clicked.connect(self._go)
        bar.addWidget(self.go)
        lay.addLayout(bar)
        self.editor = _Editor()
        self.editor.setFrameShape(QFrame.Shape.StyledPanel)
        self.editor.setPlaceholderText("Write the beginning of a text, or pick a prompt preset: "
                                       "the model continues it here.")
        self.editor.setMaximumWidth(COLUMN_WIDTH + 200)
        font = self.editor.font()
        font.setPointSizeF(font.pointSizeF() * 1.08)
        self.editor.setFont(font)
        self.editor.runRequested.connect(self._go)
        self.editor.escaped.connect(lambda: self.busy and self.stopRequested.emit())
        self.editor.textChanged.connect(lambda: self.busy or self.textEdited.emit(self.text()))
        lay.addWidget(self.editor, 1)
        self.stats = muted(QLabel())
        lay.addWidget(self.stats)
        self._stream_start = 0
        self.runRequested.connect(lambda: session.replies.run_completion(self.text()))
        self.stopRequested.connect(session.stop)
        self.presetChosen.connect(session.templates.choose_preset)
        self.textEdited.connect(session.set_completion_text)
        session.templatesShown.connect(lambda view: self.set_presets(list(view.presets),
                                                                     view.current))
        session.completionShown.connect(self.set_content)
        session.completionText.connect(self.insert_preset)
        session.busyChanged.connect(self.set_busy)
        session.replyStarted.connect(lambda mode, _m, _who: mode == "completion"
                                     and self.begin_stream())
        session.replyGrew.connect(lambda piece: self.streaming and self.append(piece))
        session.replyEnded.connect(lambda mode, state, stats, _text: mode == "completion"
                                   and self.end_stream(state, stats))

    # ------------------------------------------------------------------ content
    def set_presets(self, presets: list[tuple[str, str]], current: str | None) -> None:
        """presets: (template id, name) of the completion-kind templates."""
        self.presets.blockSignals(True)
        self.presets.clear()
        self.presets.addItem("Blank (no preset)", "")
        for tid, name in presets:
            self.presets.addItem(name, tid)
        index = self.presets.findData(current or "")
        self.presets.setCurrentIndex(max(0, index))
        self.presets.blockSignals(False)

    def text(self) -> str:
        return self.editor.toPlainText()

    def set_content(self, prompt: str, completion: str = "", stats_text: str = "") -> None:
        self.editor.blockSignals(True)
        self.editor.setPlainText(prompt)
        if completion:
            self._insert_generated(completion)
        self.editor.blockSignals(False)
        self.stats.setText(stats_text)

    def insert_preset(self, preset: str) -> None:
        """Put a preset's text in, with >PROMPT selected so that typing replaces it."""
        self.editor.setPlainText(preset)
        at = preset.find(PLACEHOLDER)
        cursor = self.editor.textCursor()
        if at >= 0:
            cursor.setPosition(at)
            cursor.setPosition(at + len(PLACEHOLDER), QTextCursor.MoveMode.KeepAnchor)
        else:
            cursor.movePosition(QTextCursor.MoveOperation.End)
        self.editor.setTextCursor(cursor)
        self.editor.setFocus()

    def _preset(self, index: int) -> None:
        self.presetChosen.emit(self.presets.itemData(index) or "")

    def _go(self) -> None:
        if self.busy:
            self.stopRequested.emit()
        elif self.text().strip():
            self.runRequested.emit()

    # ------------------------------------------------------------------ streaming
    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.go.setText("Stop" if busy else "Go")
        self.editor.setReadOnly(busy)
        self.presets.setEnabled(not busy)

    def begin_stream(self) -> None:
        self.streaming = True
        cursor = self.editor.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        self._stream_start = cursor.position()
        self.stats.setText("writing…")

    def append(self, piece: str) -> None:
        self._insert_generated(piece)
        bar = self.editor.verticalScrollBar()
        if bar.value() >= bar.maximum() - 60:
            bar.setValue(bar.maximum())

    def _insert_generated(self, text: str) -> None:
        cursor = QTextCursor(self.editor.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        fmt = QTextCharFormat()
        fmt.setForeground(self.palette().color(QPalette.ColorRole.Link))
        cursor.insertText(text, fmt)
        plain = QTextCharFormat()
        plain.setForeground(self.palette().color(QPalette.ColorRole.Text))
        cursor.setCharFormat(plain)  # what the user types next is not coloured as generated
        self.editor.setCurrentCharFormat(plain)

    def end_stream(self, state: str, stats: dict) -> None:
        self.streaming = False
        line = stats_line(stats, state)
        if state == "error":
            line = f"Error: {stats.get('error') or 'the completion failed'}"
        self.stats.setText(line)
