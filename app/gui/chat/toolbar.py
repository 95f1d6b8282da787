"""The bar above the conversation (the model picker, the template picker and its menu, Chat /
Completion, loading progress, the side panel toggle) and the banners under it (context warning,
errors). A view of the chat session: it shows the session's state and calls its methods."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QColor, QPalette
from PySide6.QtWidgets import (QButtonGroup, QFrame, QHBoxLayout, QLabel, QMenu,
                               QProgressBar, QSizePolicy, QToolButton, QWidget)

from app.gui.chat.picker import ModelPicker, picker_rows
from app.gui.chat.style import blend, elastic_combo, muted

if TYPE_CHECKING:
    from app.gui.chat.session import ChatSession
    from app.gui.chat.template_part import TemplatesView

AUTO = "__auto__"


class ModelButton(QToolButton):
    """The open conversation's model, with its family and quantization; opens the picker."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelButton")
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(self.fontMetrics().averageCharWidth() * 16)
        self.setMaximumWidth(440)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.full = ""
        self._name, self._detail = "", ""

    def show_model(self, name: str, detail: str, tip: str) -> None:
        """`name`, and beside it `detail` (family · size · quantization, or the server)."""
        self._name, self._detail = name, f"  ({detail})" if detail else ""
        self.full = self._name + self._detail
        self.setToolTip(f"{tip}\nChoose the model (Ctrl+K)")
        self._elide()

    def _elide(self) -> None:
        fm = self.fontMetrics()
        room = max(40, self.width() - 28 - fm.horizontalAdvance(self._detail + "  ▾"))
        name = fm.elidedText(self._name, Qt.TextElideMode.ElideMiddle, room)
        self.setText(f"{name}{self._detail}  ▾")

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._elide()


class ChatToolbar(QFrame):
    panelToggled = Signal(bool)

    def __init__(self, session: "ChatSession", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setObjectName("chatToolbar")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(12, 8, 12, 8)
        lay.setSpacing(8)
        self.model = ModelButton()
        self.model.clicked.connect(self.open_picker)
        lay.addWidget(self.model, 3)
        self.picker = ModelPicker(self)
        self.picker.chosen.connect(session.choose_model)
        self.picker.closed.connect(lambda: self.model.setFocus(Qt.FocusReason.PopupFocusReason))
        self.template = elastic_combo(10, 300)
        self.template.activated.connect(self._template)
        lay.addWidget(self.template, 2)
        self.template_menu_button = QToolButton(text="⋯")
        self.template_menu_button.setToolTip("Template actions: make this chat's template the "
                                             "model's default")
        self.template_menu_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.template_menu = QMenu(self.template_menu_button)
        self.make_default_action = QAction("Make it this model's default", self)
        self.make_default_action.triggered.connect(session.templates.make_default)
        self.template_menu.addAction(self.make_default_action)
        self.template_menu_button.setMenu(self.template_menu)
        lay.addWidget(self.template_menu_button)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(140)
        self.progress.setMinimumWidth(60)
        self.progress.setTextVisible(False)
        self.progress_label = muted(QLabel())
        self.progress_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.cancel = QToolButton(text="Cancel")
        self.cancel.setToolTip("Stop loading the model")
        self.cancel.clicked.connect(session.replies.stop)
        for w in (self.progress_label, self.progress, self.cancel):
            w.hide()
            lay.addWidget(w)
        lay.addStretch(0)  # the pickers (stretch 3 and 2) take the room first, up to their maximum
        self.modes = QButtonGroup(self)
        self.mode_buttons: dict[str, QToolButton] = {}
        for mode, text, tip in (("chat", "Chat", "Bubbles: each message rendered by the template"),
                                ("completion", "Completion",
                                 "Dalai's mode: one text the model continues")):
            b = QToolButton(text=text, checkable=True)
            b.setToolTip(tip)
            b.toggled.connect(lambda on, b=b: self._bold(b, on))
            b.clicked.connect(lambda _c=False, m=mode: session.choose_mode(m))
            self.modes.addButton(b)
            self.mode_buttons[mode] = b
            lay.addWidget(b)
        self.panel = QToolButton(text="Parameters", checkable=True)
        self.panel.setToolTip("Show the parameters and the prompt inspector (Ctrl+Shift+P)")
        self.panel.toggled.connect(lambda on: self._bold(self.panel, on))
        self.panel.toggled.connect(self.panelToggled)
        lay.addWidget(self.panel)
        session.modelsChanged.connect(self.show_models)
        session.templatesShown.connect(self.show_templates)
        session.opened.connect(lambda conv, _messages: self.set_mode(conv.mode))
        session.loadingChanged.connect(self.show_loading)

    @staticmethod
    def _bold(button: QToolButton, on: bool) -> None:
        font = button.font()
        font.setBold(on)
        button.setFont(font)

    # ------------------------------------------------------------------ the model
    def show_models(self) -> None:
        s = self.session
        conv, entry = s.conv, s.model()
        current = conv.model_id if conv else None
        if entry is not None:
            detail = " · ".join(b for b in (entry.detail, entry.group) if b)
            self.model.show_model(entry.name, detail,
                                  f"{entry.id}\nThe model this conversation talks to")
        elif current:
            self.model.show_model(f"{current} (missing)", "", f"{current} is not available")
        elif s.models.local:
            self.model.show_model("Choose a model…", "", "Choose the model this chat talks to")
        else:
            self.model.show_model("No models yet: add one in the Library", "",
                                  "Import or download a model in the Library")
        if self.picker.isVisible():
            self._fill_picker()

    def _fill_picker(self) -> None:
        s = self.session
        models = s.models
        self.picker.set_rows(picker_rows(models.local, models.remote, models.servers),
                             s.conv.model_id if s.conv else None)

    def open_picker(self) -> None:
        """The picker, open below the model button, the keyboard in its search field; the
        servers' models are listed again when the last listing is not fresh."""
        self._fill_picker()
        self.picker.open_below(self.model, self.session.conv.model_id if self.session.conv
                               else None)
        self.session.models.refresh_remote_if_stale()

    # ------------------------------------------------------------------ the template
    def show_templates(self, view: "TemplatesView") -> None:
        self.template.blockSignals(True)
        self.template.clear()
        self.template.addItem(view.auto_label, AUTO)
        self.template.setItemData(0, view.auto_tip, Qt.ItemDataRole.ToolTipRole)
        if not view.remote:
            self.template.insertSeparator(1)
            for tid, name in view.chat:
                self.template.addItem(name, tid)
            if view.presets:
                self.template.insertSeparator(self.template.count())
                for tid, name in view.presets:
                    self.template.addItem(name, tid)
        index = self.template.findData(view.current) if view.current else 0
        self.template.setCurrentIndex(max(0, index))
        self.template.setToolTip(f"{self.template.currentText()}\n"
                                 + (view.auto_tip if index <= 0
                                    else "Chosen for this conversation only"))
        self.template.setEnabled(not view.remote)
        self.template.blockSignals(False)
        entry = self.session.model()
        chosen = self.template.currentText() if index > 0 else "automatic detection"
        self.make_default_action.setText(
            f"Make “{chosen}” the default of {entry.name}" if entry else
            "Make it this model's default")
        self.make_default_action.setEnabled(entry is not None and not view.remote
                                            and view.current != view.model_default)
        self.template_menu_button.setEnabled(entry is not None and not view.remote)

    def _template(self, index: int) -> None:
        data = self.template.itemData(index)
        self.session.templates.choose(None if data == AUTO else data)

    def set_mode(self, mode: str) -> None:
        self.mode_buttons[mode].setChecked(True)
        self.template.setVisible(mode == "chat")
        self.template_menu_button.setVisible(mode == "chat")

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
