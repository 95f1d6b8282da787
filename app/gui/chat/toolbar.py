"""The bar above the conversation (model picker, template picker, Chat / Completion, loading
progress, side panel toggle) and the banners under it (context warning, errors)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (QButtonGroup, QFrame, QHBoxLayout, QLabel,
                               QProgressBar, QSizePolicy, QToolButton, QWidget)

from app.gui.chat.style import blend, elastic_combo, muted

AUTO = "__auto__"


class ChatToolbar(QFrame):
    modelChosen = Signal(str)
    templateChosen = Signal(object)  # template id, or None for automatic
    modeChosen = Signal(str)
    cancelLoad = Signal()
    panelToggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatToolbar")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 8, 12, 8)
        lay.setSpacing(8)
        self.model = elastic_combo(12, 440)
        # The combo may be too narrow for a long file name: the tooltip always has it whole.
        self.model.currentTextChanged.connect(self._model_tip)
        self.model.activated.connect(lambda i: self.modelChosen.emit(self.model.itemData(i) or ""))
        lay.addWidget(self.model, 3)
        self.template = elastic_combo(10, 300)
        self.template.activated.connect(self._template)
        lay.addWidget(self.template, 2)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(140)
        self.progress.setMinimumWidth(60)
        self.progress.setTextVisible(False)
        self.progress_label = muted(QLabel())
        self.progress_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.cancel = QToolButton(text="Cancel")
        self.cancel.setToolTip("Stop loading the model")
        self.cancel.clicked.connect(self.cancelLoad)
        for w in (self.progress_label, self.progress, self.cancel):
            w.hide()
            lay.addWidget(w)
        lay.addStretch(0)  # the combos (stretch 3 and 2) take the room first, up to their maximum
        self.modes = QButtonGroup(self)
        self.mode_buttons: dict[str, QToolButton] = {}
        for mode, text, tip in (("chat", "Chat", "Bubbles: each message rendered by the template"),
                                ("completion", "Completion",
                                 "Dalai's mode: one text the model continues")):
            b = QToolButton(text=text, checkable=True)
            b.setToolTip(tip)
            b.toggled.connect(lambda on, b=b: self._bold(b, on))
            b.clicked.connect(lambda _c=False, m=mode: self.modeChosen.emit(m))
            self.modes.addButton(b)
            self.mode_buttons[mode] = b
            lay.addWidget(b)
        self.panel = QToolButton(text="Parameters", checkable=True)
        self.panel.setToolTip("Show the parameters and the prompt inspector (Ctrl+Shift+P)")
        self.panel.toggled.connect(lambda on: self._bold(self.panel, on))
        self.panel.toggled.connect(self.panelToggled)
        lay.addWidget(self.panel)

    @staticmethod
    def _bold(button: QToolButton, on: bool) -> None:
        font = button.font()
        font.setBold(on)
        button.setFont(font)

    def set_models(self, models: list[tuple[str, str]], current: str | None) -> None:
        """models: (id, label); an unknown current id is shown as missing."""
        self.model.blockSignals(True)
        self.model.clear()
        if not models:
            self.model.addItem("No models yet: add one in the Library", "")
        for mid, label in models:
            self.model.addItem(label, mid)
        if current and self.model.findData(current) < 0:
            self.model.addItem(f"{current} (missing)", current)
        if current:
            self.model.setCurrentIndex(self.model.findData(current))
        elif models:
            self.model.insertItem(0, "Choose a model…", "")
            self.model.setCurrentIndex(0)
        self.model.blockSignals(False)
        self._model_tip()

    def _model_tip(self) -> None:
        self.model.setToolTip(f"{self.model.currentText()}\nThe model this conversation talks to")

    def set_templates(self, auto_label: str, auto_tip: str, chat: list[tuple[str, str]],
                      presets: list[tuple[str, str]], current: str | None) -> None:
        self.template.blockSignals(True)
        self.template.clear()
        self.template.addItem(auto_label, AUTO)
        self.template.setItemData(0, auto_tip, Qt.ItemDataRole.ToolTipRole)
        self.template.insertSeparator(1)
        for tid, name in chat:
            self.template.addItem(name, tid)
        if presets:
            self.template.insertSeparator(self.template.count())
            for tid, name in presets:
                self.template.addItem(name, tid)
        index = self.template.findData(current) if current else 0
        self.template.setCurrentIndex(max(0, index))
        self.template.setToolTip(f"{self.template.currentText()}\n"
                                 + (auto_tip if index <= 0 else "Chosen for this conversation"))
        self.template.blockSignals(False)

    def _template(self, index: int) -> None:
        data = self.template.itemData(index)
        self.templateChosen.emit(None if data == AUTO else data)

    def set_mode(self, mode: str) -> None:
        self.mode_buttons[mode].setChecked(True)
        self.template.setVisible(mode == "chat")

    def show_loading(self, name: str | None, fraction: float = 0.0) -> None:
        visible = name is not None
        for w in (self.progress_label, self.progress, self.cancel):
            w.setVisible(visible)
        if visible:
            self.progress_label.setText(f"Loading {name}…")
            self.progress.setValue(int(fraction * 100))


class Banner(QFrame):
    """A one-line message above the composer: warning (context) or error, with a close button."""

    def __init__(self, parent: QWidget | None = None, closable: bool = True) -> None:
        super().__init__(parent)
        self.kind = "warning"
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        lay.addWidget(self.label, 1)
        self.close_button = QToolButton(text="✕")
        self.close_button.setAutoRaise(True)
        self.close_button.clicked.connect(self.hide)
        lay.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        # Only once it has a parent: shown before, it is a window of its own for a moment (a
        # flash on the desktop that takes the activation from the main window).
        self.close_button.setVisible(closable)
        self.hide()

    def show_message(self, text: str, kind: str = "warning") -> None:
        self.kind = kind
        self.label.setText(text)
        self._restyle()
        self.show()

    def _restyle(self) -> None:
        pal = self.window().palette()  # not our own: the style sheet below changes that one
        accent = QColor("#d1242f") if self.kind == "error" else QColor("#bf8700")
        if self.kind == "info":
            accent = pal.color(QPalette.ColorRole.Highlight)
        fill = blend(pal.color(QPalette.ColorRole.Base), accent, 0.14)
        sheet = (f"Banner {{ background: {fill.name()}; border: 1px solid "
                 f"{blend(fill, accent, 0.5).name()}; border-radius: 6px; }}")
        if sheet != self.styleSheet():  # setting it changes the palette: no loop
            self.setStyleSheet(sheet)

    def changeEvent(self, event) -> None:  # noqa: N802
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange and self.isVisible():
            self._restyle()
