"""Dalai's knobs (n_predict, temp, top_k, top_p, repeat_penalty, repeat_last_n, seed, threads)
plus min_p and the context size, each with its default shown beside it. A view of the chat
session: it shows the conversation's knobs and gives the session every change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QPushButton,
                               QSpinBox, QVBoxLayout, QWidget)

from app.gui.chat.style import muted

if TYPE_CHECKING:
    from app.gui.chat.knobs import KnobsView
    from app.gui.chat.session import ChatSession


@dataclass(frozen=True)
class Knob:
    key: str
    label: str
    lo: float
    hi: float
    step: float = 1
    decimals: int = 0
    tip: str = ""


KNOBS: tuple[Knob, ...] = (
    Knob("max_tokens", "n_predict", 1, 32768, 16, 0,
         "The most tokens a reply may have (llama.cpp -n)."),
    Knob("temperature", "temp", 0, 2, 0.05, 2,
         "Randomness: 0 always picks the likeliest token (--temp)."),
    Knob("top_k", "top_k", 0, 1000, 1, 0, "Sample among the k likeliest tokens; 0 = all (--top-k)."),
    Knob("top_p", "top_p", 0, 1, 0.01, 2,
         "Sample among the likeliest tokens whose probabilities add up to p (--top-p)."),
    Knob("min_p", "min_p", 0, 1, 0.01, 2,
         "Drop tokens less likely than min_p × the likeliest one (--min-p)."),
    Knob("repeat_penalty", "repeat_penalty", 0.5, 2, 0.05, 2,
         "Penalize tokens seen in the last repeat_last_n tokens; 1 = off (--repeat-penalty)."),
    Knob("repeat_last_n", "repeat_last_n", 0, 4096, 8, 0,
         "How many recent tokens repeat_penalty looks at (--repeat-last-n)."),
    Knob("seed", "seed", -1, 2**31 - 1, 1, 0,
         "-1 = a new random seed each reply (shown under the reply); any other value repeats."),
    Knob("threads", "threads", 1, 256, 1, 0,
         "CPU threads for llama.cpp (-t). Applies when the model is next loaded."),
    Knob("context", "context size", 128, 131072, 256, 0,
         "Tokens the model can see at once (-c). Applies when the model is next loaded."),
)
RELOAD_KEYS = ("threads", "context")


class ParameterPanel(QWidget):
    """values() → {key: number}; `changed` fires on every edit (the session saves it shortly
    after)."""

    changed = Signal(dict)

    def __init__(self, session: "ChatSession", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.defaults: dict[str, Any] = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 12, 12, 12)
        self.note = muted(QLabel())
        self.note.setWordWrap(True)
        lay.addWidget(self.note)
        grid = QGridLayout()  # name | value | its default
        grid.setHorizontalSpacing(10)
        grid.setVerticalSpacing(6)
        grid.setColumnStretch(1, 1)
        self.fields: dict[str, QSpinBox | QDoubleSpinBox] = {}
        self.default_labels: dict[str, QLabel] = {}
        for row, knob in enumerate(KNOBS):
            box: QSpinBox | QDoubleSpinBox
            if knob.decimals:
                box = QDoubleSpinBox(decimals=knob.decimals, singleStep=knob.step)
                box.setRange(knob.lo, knob.hi)
            else:
                box = QSpinBox(singleStep=int(knob.step))
                box.setRange(int(knob.lo), int(knob.hi))
            if knob.key == "seed":
                box.setSpecialValueText("random")
            box.setKeyboardTracking(False)
            box.setToolTip(knob.tip)
            box.setMinimumWidth(96)
            box.valueChanged.connect(self._emit)
            label = QLabel(knob.label)
            label.setToolTip(knob.tip)
            dlabel = muted(QLabel())
            grid.addWidget(label, row, 0, Qt.AlignmentFlag.AlignRight)
            grid.addWidget(box, row, 1)
            grid.addWidget(dlabel, row, 2)
            self.fields[knob.key] = box
            self.default_labels[knob.key] = dlabel
        lay.addLayout(grid)
        buttons = QHBoxLayout()
        self.reset = QPushButton("Reset to defaults")
        self.reset.clicked.connect(self.reset_to_defaults)
        buttons.addWidget(self.reset)
        buttons.addStretch(1)
        lay.addLayout(buttons)
        self.reload_note = muted(QLabel("threads and context size apply when the model is next "
                                        "loaded (Corral reloads it for the next reply)."))
        self.reload_note.setWordWrap(True)
        lay.addWidget(self.reload_note)
        lay.addStretch(1)
        self._quiet = False
        self.changed.connect(session.knobs.set)
        session.knobsShown.connect(self.show_knobs)

    def show_knobs(self, view: "KnobsView") -> None:
        self.set_defaults(view.defaults, view.note)
        self._quiet = True  # a value clamped by the new limit is no edit: set_values follows
        self.set_limits(max_context=view.max_context)
        self.set_values(view.values)

    def set_defaults(self, defaults: dict[str, Any], note: str = "") -> None:
        self.defaults = dict(defaults)
        for key, label in self.default_labels.items():
            value = defaults.get(key)
            text = "random" if key == "seed" and value in (None, -1) else value
            label.setText(f"default {text}" if value is not None else "")
        self.note.setText(note)

    def set_limits(self, *, max_context: int | None = None, max_threads: int | None = None) -> None:
        if max_context:
            self.fields["context"].setMaximum(max(128, max_context))
        if max_threads:
            self.fields["threads"].setMaximum(max(1, max_threads))

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, box in self.fields.items():
            out[key] = round(box.value(), 4) if isinstance(box, QDoubleSpinBox) else box.value()
        return out

    def set_values(self, values: dict[str, Any]) -> None:
        self._quiet = True
        for key, box in self.fields.items():
            value = values.get(key, self.defaults.get(key))
            if value is None and key == "seed":
                value = -1
            if value is not None:
                box.setValue(value)
        self._quiet = False

    def reset_to_defaults(self) -> None:
        self.set_values(self.defaults)
        self._emit()

    def _emit(self, *_: Any) -> None:
        if not self._quiet:
            self.changed.emit(self.values())
