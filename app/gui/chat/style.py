"""Small shared helpers for the chat views: colours from the palette, muted text, stats."""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QComboBox, QLabel, QSizePolicy

from app.core.turns.ending import describe_stats


def blend(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(round(a.red() + (b.red() - a.red()) * t),
                  round(a.green() + (b.green() - a.green()) * t),
                  round(a.blue() + (b.blue() - a.blue()) * t))


def muted(label: QLabel) -> QLabel:
    label.setForegroundRole(QPalette.ColorRole.PlaceholderText)
    return label


def elastic_combo(min_chars: int, max_width: int) -> QComboBox:
    """A combo box at least `min_chars` wide that grows with the window up to `max_width` px, so
    long model and template names are shown whole when there is room (add it with a stretch)."""
    combo = QComboBox()
    combo.setMinimumContentsLength(min_chars)
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    combo.setMaximumWidth(max_width)
    return combo


def stats_line(stats: dict[str, Any], state: str) -> str:
    """A reply's footer: its stats and why it stopped, with the error's message when it failed
    (the core's one formatter). The one place a reply's error is shown: said once."""
    return describe_stats(stats, state)
