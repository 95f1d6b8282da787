"""A light syntax highlighter for code blocks: Pygments lexes each line, Qt paints it.

Pygments is imported on first use (not at start-up). Colours come from a Pygments style chosen
for the palette in force: a light one on light themes, a dark one on dark themes.
"""

from __future__ import annotations

import threading
from functools import lru_cache

from PySide6.QtGui import QColor, QFont, QPalette, QSyntaxHighlighter, QTextCharFormat, \
    QTextDocument

LIGHT_STYLE, DARK_STYLE = "default", "monokai"
_ALIASES = {"js": "javascript", "ts": "typescript", "sh": "bash", "shell": "bash",
            "py": "python", "c++": "cpp", "yml": "yaml", "md": "markdown", "": "text"}


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


def style_name(palette: QPalette) -> str:
    return DARK_STYLE if is_dark(palette) else LIGHT_STYLE


def prewarm() -> None:
    """Import Pygments in a background thread, so the first code block of a streaming reply
    does not pause the event loop for the import."""
    def work() -> None:
        _lexer("python")
        from pygments.styles import get_style_by_name
        get_style_by_name(LIGHT_STYLE), get_style_by_name(DARK_STYLE)
    threading.Thread(target=work, name="pygments-prewarm", daemon=True).start()


@lru_cache(maxsize=64)
def _lexer(lang: str):
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound
    name = _ALIASES.get(lang.lower(), lang.lower())
    try:
        return get_lexer_by_name(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return get_lexer_by_name("text", stripnl=False, ensurenl=False)


@lru_cache(maxsize=8)
def _formats(style: str) -> tuple[dict, str]:
    from pygments.styles import get_style_by_name
    pstyle = get_style_by_name(style)
    formats = {}
    for token, spec in pstyle:
        fmt = QTextCharFormat()
        if spec["color"]:
            fmt.setForeground(QColor(f"#{spec['color']}"))
        if spec["bold"]:
            fmt.setFontWeight(QFont.Weight.Bold)
        if spec["italic"]:
            fmt.setFontItalic(True)
        formats[token] = fmt
    return formats, pstyle.background_color


def background(style: str) -> str:
    return _formats(style)[1]


class CodeHighlighter(QSyntaxHighlighter):
    def __init__(self, document: QTextDocument, lang: str, style: str) -> None:
        super().__init__(document)
        self._lexer = _lexer(lang)
        self._formats = _formats(style)[0]

    def set_style(self, style: str) -> None:
        self._formats = _formats(style)[0]
        self.rehighlight()

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt's name
        if not text:
            return
        at = 0
        formats = self._formats
        for token, value in self._lexer.get_tokens(text):
            fmt = None
            while fmt is None and token is not None:
                fmt = formats.get(token)
                token = token.parent
            n = len(value)
            if fmt is not None and n:
                self.setFormat(at, n, fmt)
            at += n
