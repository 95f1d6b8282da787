"""Chat mode's view: a column of message bubbles (layout and painting only).

An assistant reply is Markdown split into prose and code segments (`segments.py`): prose is a
read-only QTextBrowser sized to its text, code is a `CodeBlock` (monospace, highlighted, Copy).
While a reply streams, only its last segment is re-rendered, at most every `RENDER_MS` (longer
when rendering is slow), so a long reply costs the event loop little. Colours follow QPalette.
"""

from __future__ import annotations

import math
import time
from typing import Any

from PySide6.QtCore import QRectF, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (QColor, QDesktopServices, QFontDatabase, QGuiApplication, QPainter,
                           QPalette, QTextCursor)
from PySide6.QtWidgets import (QFrame, QGraphicsOpacityEffect, QHBoxLayout, QLabel,
                               QPlainTextEdit, QPushButton, QScrollArea, QSizePolicy, QTextBrowser,
                               QToolButton, QVBoxLayout, QWidget)

from app.gui.chat.highlight import CodeHighlighter, background, is_dark, style_name
from app.gui.chat.segments import Segment, split_markdown

RENDER_MS = 50       # a streaming reply is shown at most this often
MARKDOWN_MS = 300    # and rendered as Markdown at most this often (plain text in between)
_FENCE_CHARS = set("`~")
COLUMN_WIDTH = 860
SHOWN_AT_FIRST = 60  # older messages wait behind "Show earlier messages"


def blend(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(round(a.red() + (b.red() - a.red()) * t),
                  round(a.green() + (b.green() - a.green()) * t),
                  round(a.blue() + (b.blue() - a.blue()) * t))


def muted(label: QLabel) -> QLabel:
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


def stats_line(stats: dict[str, Any], state: str) -> str:
    parts: list[str] = []
    if stats.get("generated_tokens"):
        parts.append(f"{stats['generated_tokens']} tokens")
    if stats.get("decode_tps"):
        parts.append(f"{stats['decode_tps']:.1f} tok/s")
    if stats.get("ttft_s") is not None:
        parts.append(f"first token {stats['ttft_s'] * 1000:.0f} ms")
    reason = stats.get("stop_reason")
    words = {"eos": "end of text", "stop": "stop string", "length": "length limit",
             "cancelled": "stopped", "error": "error"}
    if state == "interrupted" and reason != "cancelled":
        parts.append("interrupted (Corral was closed mid-reply)")
    elif reason:
        parts.append(f"stop: {words.get(reason, reason)}")
    return " · ".join(parts)


class MarkdownText(QTextBrowser):
    """Read-only rich text exactly as tall as its content (the column scrolls, not this)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.viewport().setAutoFillBackground(False)
        self.setAutoFillBackground(False)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().setDocumentMargin(0)
        self.setOpenLinks(False)
        self.anchorClicked.connect(self._open)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._width = -1
        self.setFixedHeight(self.fontMetrics().lineSpacing())

    @staticmethod
    def _open(url: QUrl) -> None:
        if url.scheme() in ("http", "https"):
            QDesktopServices.openUrl(url)

    def set_markdown(self, text: str) -> None:
        self.document().setMarkdown(text)
        self._fit()

    def set_plain(self, text: str) -> None:
        self.document().setPlainText(text)
        self._fit()

    def append_plain(self, text: str) -> None:
        """Add text at the end as it is (a streaming reply between two Markdown renders):
        only the last paragraph is laid out again."""
        cursor = QTextCursor(self.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        self._fit()

    def _fit(self) -> None:
        width = max(self.viewport().width(), 40)
        if width != self._width:  # setTextWidth lays the whole document out again
            self._width = width
            self.document().setTextWidth(width)
        height = max(math.ceil(self.document().size().height()), self.fontMetrics().lineSpacing())
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def wheelEvent(self, event) -> None:  # noqa: N802 - let the column scroll
        event.ignore()


class _CodeEdit(QPlainTextEdit):
    def __init__(self) -> None:
        super().__init__(readOnly=True)

    def wheelEvent(self, event) -> None:  # noqa: N802 - the column scrolls vertically
        if event.angleDelta().x() and self.horizontalScrollBar().maximum() > 0:
            super().wheelEvent(event)
        else:
            event.ignore()


class CodeBlock(QFrame):
    """A fenced code block: language, Copy button, highlighted monospace text."""

    def __init__(self, lang: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("codeBlock")
        self.lang = lang
        self.code = ""
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 4, 4, 6)
        lay.setSpacing(2)
        top = QHBoxLayout()
        self.lang_label = muted(QLabel(lang or "code"))
        self.copy_button = QToolButton(text="Copy")
        self.copy_button.setAutoRaise(True)
        self.copy_button.setToolTip("Copy this code")
        self.copy_button.clicked.connect(self.copy)
        top.addWidget(self.lang_label)
        top.addStretch(1)
        top.addWidget(self.copy_button)
        lay.addLayout(top)
        self.editor = _CodeEdit()
        self.editor.setFrameShape(QFrame.Shape.NoFrame)
        self.editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.editor.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.editor.document().setDocumentMargin(2)
        self.editor.viewport().setAutoFillBackground(False)
        self.editor.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                            | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        lay.addWidget(self.editor)
        self._style = style_name(self.window().palette())
        self.highlighter = CodeHighlighter(self.editor.document(), lang, self._style)
        self._restyle()

    def set_code(self, code: str) -> None:
        if code == self.code:
            return
        if self.code and code.startswith(self.code):
            cursor = QTextCursor(self.editor.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(code[len(self.code):])
        else:
            self.editor.setPlainText(code)
        self.code = code
        self._fit()

    def _fit(self) -> None:
        lines = max(1, self.editor.document().blockCount())
        height = lines * self.editor.fontMetrics().lineSpacing() + 10
        if self.editor.horizontalScrollBar().maximum() > 0:
            height += self.editor.horizontalScrollBar().sizeHint().height()
        self.editor.setFixedHeight(height)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._fit()

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.code)
        self.copy_button.setText("Copied")
        QTimer.singleShot(1500, lambda: self.copy_button.setText("Copy"))

    def _restyle(self) -> None:
        bg = QColor(background(self._style))
        pal = self.window().palette()  # not our own: the style sheet below changes that one
        edge = blend(bg, pal.color(QPalette.ColorRole.Text), 0.15)
        self.setStyleSheet(f"QFrame#codeBlock {{ background: {bg.name()}; border: 1px solid "
                           f"{edge.name()}; border-radius: 6px; }}")
        editor = self.editor.palette()
        editor.setColor(QPalette.ColorRole.Text,
                        QColor("#f8f8f2") if is_dark(pal) else QColor("#1f2328"))
        self.editor.setPalette(editor)

    def changeEvent(self, event) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange:
            style = style_name(self.window().palette())
            if style != self._style:
                self._style = style
                self.highlighter.set_style(style)
                self._restyle()


class MessageBubble(QFrame):
    """One message: who, the text, and (for replies) a muted stats line; actions below."""

    copyRequested = Signal(str)
    editRequested = Signal(int)
    regenerateRequested = Signal(int)

    def __init__(self, message_id: int, role: str, who: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message_id, self.role = message_id, role
        self.text, self.state, self.stats = "", "complete", {}
        self._rendered: list[tuple[Segment, QWidget]] = []
        self._dropped = False
        self._last_full = 0.0
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 10, 14, 8)
        lay.setSpacing(6)
        self.who = QLabel(who)
        font = self.who.font()
        font.setBold(True)
        self.who.setFont(font)
        lay.addWidget(self.who)
        self.body = QVBoxLayout()
        self.body.setSpacing(8)
        lay.addLayout(self.body)
        foot = QHBoxLayout()
        foot.setSpacing(4)
        self.stats_label = muted(QLabel())
        self.stats_label.setWordWrap(True)
        small = self.stats_label.font()
        small.setPointSizeF(max(7.0, small.pointSizeF() * 0.88))
        self.stats_label.setFont(small)
        foot.addWidget(self.stats_label, 1)
        self.copy_button = self._action("Copy", lambda: self.copyRequested.emit(self.text))
        foot.addWidget(self.copy_button)
        self.edit_button = self.regen_button = None
        if role == "user":
            self.edit_button = self._action("Edit", lambda: self.editRequested.emit(self.message_id))
            foot.addWidget(self.edit_button)
        elif role == "assistant":
            self.regen_button = self._action(
                "Regenerate", lambda: self.regenerateRequested.emit(self.message_id))
            foot.addWidget(self.regen_button)
        lay.addLayout(foot)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

    def _action(self, text: str, slot) -> QToolButton:
        button = QToolButton(text=text)
        button.setAutoRaise(True)
        button.setFont(self.stats_label.font())
        button.clicked.connect(slot)
        return button

    # ------------------------------------------------------------------ content
    def set_text(self, text: str) -> None:
        self.text = text
        self.render()

    def grow(self, added: str) -> None:
        """A streaming reply got longer. The tail is appended as plain text when that cannot
        change the segments (no fence characters), and the whole reply is rendered as
        Markdown again at most every MARKDOWN_MS: cheap for the event loop, correct soon."""
        self.text += added
        now = time.monotonic()
        if self._rendered and self.role == "assistant" and not (set(added) & _FENCE_CHARS):
            seg, widget = self._rendered[-1]
            if isinstance(widget, CodeBlock):
                widget.set_code(widget.code + added)
                self._rendered[-1] = (Segment(seg.kind, widget.code, seg.lang, False), widget)
                return
            if now - self._last_full < MARKDOWN_MS / 1000:
                widget.append_plain(added)
                self._rendered[-1] = (Segment(seg.kind, seg.text + added), widget)
                return
        self._last_full = now
        self.render()

    def render(self) -> None:
        if self.role != "assistant":
            if not self._rendered:
                widget = MarkdownText(self)
                self.body.addWidget(widget)
                self._rendered.append((Segment("text", ""), widget))
            self._rendered[0][1].set_plain(self.text)
            return
        segments = split_markdown(self.text) or [Segment("text", "")]
        keep = 0
        for (old, _), new in zip(self._rendered, segments):
            if old.kind != new.kind or old.lang != new.lang:
                break
            keep += 1
        for _, widget in self._rendered[keep:]:
            widget.deleteLater()
        self._rendered = self._rendered[:keep]
        for i, seg in enumerate(segments):
            if i < keep:
                old, widget = self._rendered[i]
                if old != seg:
                    self._fill(widget, seg)
                    self._rendered[i] = (seg, widget)
                continue
            widget = CodeBlock(seg.lang, self) if seg.kind == "code" else MarkdownText(self)
            self._fill(widget, seg)
            self.body.addWidget(widget)
            self._rendered.append((seg, widget))

    @staticmethod
    def _fill(widget: QWidget, seg: Segment) -> None:
        if isinstance(widget, CodeBlock):
            widget.set_code(seg.text)
        else:
            widget.set_markdown(seg.text)

    def set_state(self, state: str, stats: dict[str, Any]) -> None:
        self.state, self.stats = state, dict(stats)
        line = stats_line(stats, state) if self.role == "assistant" else ""
        if state == "error":
            line = f"Error: {stats.get('error') or 'the reply failed'}"
        elif state == "streaming":
            line = "writing…"
        self.stats_label.setText(line)
        tip = []
        for key, label in (("model", "Model"), ("template", "Template"), ("seed", "Seed"),
                           ("prompt_tokens", "Prompt tokens"), ("reused_tokens", "Reused from cache")):
            if stats.get(key) is not None:
                tip.append(f"{label}: {stats[key]}")
        self.stats_label.setToolTip("\n".join(tip))
        self.update()

    def set_actions_enabled(self, enabled: bool) -> None:
        for button in (self.edit_button, self.regen_button):
            if button is not None:
                button.setEnabled(enabled)

    def set_dropped(self, dropped: bool) -> None:
        if dropped == self._dropped:
            return
        self._dropped = dropped
        if dropped:
            effect = QGraphicsOpacityEffect(self)
            effect.setOpacity(0.45)
            self.setGraphicsEffect(effect)
            self.setToolTip("Not sent to the model: it no longer fits in the context")
        else:
            self.setGraphicsEffect(None)
            self.setToolTip("")

    # ------------------------------------------------------------------ painting
    def paintEvent(self, event) -> None:  # noqa: N802
        pal = self.palette()
        base, text = pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)
        if self.role == "user":
            fill = blend(base, pal.color(QPalette.ColorRole.Highlight), 0.16)
        else:
            fill = blend(base, text, 0.035)
        if self.state == "error":
            fill = blend(fill, QColor("#d1242f"), 0.12)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(blend(fill, text, 0.10))
        painter.setBrush(fill)
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 12, 12)


class MessageView(QScrollArea):
    """The conversation: bubbles in a centred column, sticking to the bottom while it grows."""

    editRequested = Signal(int)
    regenerateRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        outer = QWidget()
        outer.setBackgroundRole(QPalette.ColorRole.Base)
        outer.setAutoFillBackground(True)
        row = QHBoxLayout(outer)
        row.setContentsMargins(16, 16, 16, 16)
        self.column = QWidget()
        self.column.setMaximumWidth(COLUMN_WIDTH)
        self.lay = QVBoxLayout(self.column)
        self.lay.setContentsMargins(0, 0, 0, 0)
        self.lay.setSpacing(14)
        self.more_button = QPushButton()
        self.more_button.setFlat(True)
        self.more_button.clicked.connect(self._show_earlier)
        self.more_button.hide()
        self.lay.addWidget(self.more_button, 0, Qt.AlignmentFlag.AlignHCenter)
        self.empty = muted(QLabel("Ask anything. Your conversations stay on this computer.\n"
                                  "Enter sends · Shift+Enter new line · Esc stops"))
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.lay.addWidget(self.empty)
        self.lay.addStretch(1)
        row.addStretch(0)
        row.addWidget(self.column, 1)
        row.addStretch(0)
        self.setWidget(outer)
        self.bubbles: list[MessageBubble] = []
        self._hidden: list[tuple[Any, str]] = []
        self.streaming: MessageBubble | None = None
        self._dirty = False
        self._pending = ""
        self._render_cost = 0.0
        self._timer = QTimer(self, singleShot=True)
        self._timer.timeout.connect(self._render_stream)
        self._stick = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(lambda v: setattr(self, "_stick", v >= bar.maximum() - 40))
        bar.rangeChanged.connect(lambda _lo, hi: self._stick and bar.setValue(hi))

    # ------------------------------------------------------------------ building
    def clear(self) -> None:
        self._timer.stop()
        for bubble in self.bubbles:
            bubble.deleteLater()
        self.bubbles, self._hidden, self.streaming = [], [], None
        self.more_button.hide()
        self.empty.show()
        self._stick = True

    def set_messages(self, messages: list[Any], who_for) -> None:
        """Show `messages` (app.core.chats.Message); who_for(message) names the speaker."""
        self.clear()
        older, recent = messages[:-SHOWN_AT_FIRST], messages[-SHOWN_AT_FIRST:]
        self._hidden = [(m, who_for(m)) for m in older]
        for m in recent:
            self._append_bubble(m, who_for(m))
        self._update_more()
        self.scroll_to_bottom()

    def _make(self, message: Any, who: str) -> MessageBubble:
        bubble = MessageBubble(message.id, message.role, who)
        bubble.copyRequested.connect(lambda text: QGuiApplication.clipboard().setText(text))
        bubble.editRequested.connect(self.editRequested)
        bubble.regenerateRequested.connect(self.regenerateRequested)
        bubble.set_text(message.content)
        bubble.set_state(message.state, message.stats)
        return bubble

    def _place(self, bubble: MessageBubble, index: int) -> None:
        # Replies use the column's width; your messages sit on the right, a little narrower.
        align = Qt.AlignmentFlag.AlignRight if bubble.role == "user" else Qt.AlignmentFlag(0)
        if bubble.role == "user":
            bubble.setMaximumWidth(int(COLUMN_WIDTH * 0.85))
        self.lay.insertWidget(index, bubble, 0, align)

    def _append_bubble(self, message: Any, who: str) -> MessageBubble:
        bubble = self._make(message, who)
        self._place(bubble, self.lay.count() - 1)  # before the stretch
        self.bubbles.append(bubble)
        self.empty.hide()
        self._update_actions()
        return bubble

    def add_message(self, message: Any, who: str) -> MessageBubble:
        self._stick = True
        return self._append_bubble(message, who)

    def _show_earlier(self) -> None:
        batch, self._hidden = self._hidden[-SHOWN_AT_FIRST:], self._hidden[:-SHOWN_AT_FIRST]
        made = [self._make(m, who) for m, who in batch]
        for i, bubble in enumerate(made):
            self._place(bubble, 1 + i)  # after the button
        self.bubbles[:0] = made
        self._update_more()

    def _update_more(self) -> None:
        self.more_button.setText(f"Show {len(self._hidden)} earlier messages")
        self.more_button.setVisible(bool(self._hidden))

    def remove_from(self, message_id: int) -> None:
        """Remove the bubble of `message_id` and every later one."""
        keep = [b for b in self.bubbles if b.message_id < message_id]
        for bubble in self.bubbles[len(keep):]:
            bubble.deleteLater()
        self.bubbles = keep
        self.empty.setVisible(not keep and not self._hidden)
        self._update_actions()

    def bubble(self, message_id: int) -> MessageBubble | None:
        return next((b for b in self.bubbles if b.message_id == message_id), None)

    def set_busy(self, busy: bool) -> None:
        self._busy = busy
        self._update_actions()

    def _update_actions(self) -> None:
        busy = getattr(self, "_busy", False)
        last_reply = next((b for b in reversed(self.bubbles) if b.role == "assistant"), None)
        for b in self.bubbles:
            b.set_actions_enabled(not busy)
            if b.regen_button is not None:
                b.regen_button.setVisible(b is last_reply)

    def set_dropped_turns(self, turns: int) -> None:
        """Fade the oldest `turns` exchanges: they will not be sent to the model."""
        seen = len([m for m, _ in self._hidden if m.role == "user"])
        for b in self.bubbles:
            if b.role == "user":
                seen += 1
            b.set_dropped(0 < seen <= turns)

    # ------------------------------------------------------------------ streaming
    def begin_stream(self, message: Any, who: str) -> MessageBubble:
        self.streaming = self.add_message(message, who)
        self._dirty = False
        self._pending = ""
        return self.streaming

    def append(self, piece: str) -> None:
        if self.streaming is None:
            return
        self._pending += piece
        self._dirty = True
        if not self._timer.isActive():
            # Never more often than RENDER_MS, and never more than a quarter of the time.
            self._timer.start(max(RENDER_MS, int(self._render_cost * 4000)))

    def _render_stream(self) -> None:
        if self.streaming is None or not self._dirty:
            return
        t0 = time.perf_counter()
        self._dirty = False
        added, self._pending = self._pending, ""
        self.streaming.grow(added)
        self._render_cost = time.perf_counter() - t0

    def end_stream(self, state: str, stats: dict[str, Any], text: str | None = None) -> None:
        bubble, self.streaming = self.streaming, None
        self._timer.stop()
        if bubble is None:
            return
        bubble.text = text if text is not None else bubble.text + self._pending
        self._pending = ""
        bubble.render()
        bubble.set_state(state, stats)
        self._update_actions()

    def scroll_to_bottom(self) -> None:
        self._stick = True
        QTimer.singleShot(0, lambda: self.verticalScrollBar().setValue(
            self.verticalScrollBar().maximum()))
