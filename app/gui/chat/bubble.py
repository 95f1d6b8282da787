"""One message bubble: who, the text (Markdown prose and highlighted code blocks, each with a
Copy button), a muted stats line and the message's actions. Layout and painting only.

An assistant reply is split into prose and code segments (`segments.py`): prose is a read-only
QTextBrowser sized to its text, code is a `CodeBlock`. While a reply streams, `grow()` appends
the new text to the last segment as plain text and renders the whole reply as Markdown again at
most every MARKDOWN_MS (less often when that render is slow), so a long reply costs the event
loop little.
"""

from __future__ import annotations

import math
import time
from typing import Any

from PySide6.QtCore import QRectF, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (QColor, QDesktopServices, QFontDatabase, QGuiApplication, QPainter,
                           QPalette, QTextCursor)
from PySide6.QtWidgets import (QFrame, QGraphicsOpacityEffect, QHBoxLayout, QLabel,
                               QPlainTextEdit, QSizePolicy, QTextBrowser, QToolButton,
                               QVBoxLayout, QWidget)

from app.gui.chat.highlight import CodeHighlighter, background, is_dark, style_name
from app.gui.chat.segments import Segment, split_markdown
from app.gui.chat.style import blend, muted, stats_line

MARKDOWN_MS = 300    # a streaming reply is rendered as Markdown at most this often
_FENCE_CHARS = set("`~")


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
        self._background: QColor | None = None
        self.setFixedHeight(self.fontMetrics().lineSpacing())

    def set_background(self, color: QColor) -> None:
        """Paint this colour behind the text (the bubble's): the text is then opaque, so a
        streaming reply repaints only itself. Painted here, not set in the palette: the app's
        style sheet would put back an old palette when the theme changes."""
        if color != self._background:
            self._background = QColor(color)
            self.viewport().setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
            self.viewport().update()

    def paintEvent(self, event) -> None:  # noqa: N802
        if self._background is not None:
            painter = QPainter(self.viewport())
            painter.fillRect(event.rect(), self._background)
            painter.end()
        super().paintEvent(event)

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
        QTimer.singleShot(1500, self.copy_button, lambda: self.copy_button.setText("Copy"))

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
        self._full_cost = 0.0
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
        self.copy_button = self._action("Copy", self._copy)
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

    def _copy(self) -> None:
        self.copyRequested.emit(self.text)
        self.copy_button.setText("Copied")
        QTimer.singleShot(1500, self.copy_button, lambda: self.copy_button.setText("Copy"))

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
            # A long reply takes longer to render: then render it less often (≤ 5% of the time).
            if now - self._last_full < max(MARKDOWN_MS / 1000, 20 * self._full_cost):
                widget.append_plain(added)
                self._rendered[-1] = (Segment(seg.kind, seg.text + added), widget)
                return
        self._last_full = now
        self.render()
        self._full_cost = time.monotonic() - now

    def render(self) -> None:
        if self.role != "assistant":
            if not self._rendered:
                widget = MarkdownText(self)
                widget.set_background(self.fill())
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
            if isinstance(widget, MarkdownText):
                widget.set_background(self.fill())
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
        self._paint_texts()
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
    def fill(self) -> QColor:
        pal = self.palette()
        base, text = pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)
        if self.role == "user":
            fill = blend(base, pal.color(QPalette.ColorRole.Highlight), 0.16)
        else:
            fill = blend(base, text, 0.035)
        if self.state == "error":
            fill = blend(fill, QColor("#d1242f"), 0.12)
        return fill

    def _paint_texts(self) -> None:
        """The texts paint their own background in the bubble's colour: a streaming reply then
        repaints only its text, not the whole bubble behind it."""
        fill = self.fill()
        for _seg, widget in self._rendered:
            if isinstance(widget, MarkdownText):
                widget.set_background(fill)

    def changeEvent(self, event) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange:
            self._paint_texts()

    def paintEvent(self, event) -> None:  # noqa: N802
        fill, text = self.fill(), self.palette().color(QPalette.ColorRole.Text)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(blend(fill, text, 0.10))
        painter.setBrush(fill)
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 12, 12)
