"""First run, no model yet: a short welcome that points to the catalog and to importing a file."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.gui import theme
from app.gui.widgets import label


class WelcomeScreen(QWidget):
    browseCatalog = Signal()
    importFile = Signal()
    findOtherApps = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("WelcomeScreen")
        outer = QVBoxLayout(self)
        outer.addStretch(2)
        column = QVBoxLayout()
        column.setSpacing(14)
        logo = QLabel()
        logo.setPixmap(theme.icon("logo", theme.colors()["accent"], 64).pixmap(64, 64))
        logo.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        self.logo = logo
        column.addWidget(logo)
        title = label("Welcome to Corral", role="title")
        title.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        column.addWidget(title)
        intro = label("Chat with LLaMA-family models on your own computer: nothing you type "
                      "leaves it.<br>To begin, add a model.", role="muted")
        intro.setAlignment(Qt.AlignmentFlag.AlignHCenter)
        column.addWidget(intro)

        choices = QHBoxLayout()
        choices.setSpacing(14)
        choices.addWidget(self._choice(
            "From the catalog",
            "Curated models (TinyLlama, Llama 2, Vicuna, Mistral…) with what each needs in memory.",
            "Browse the catalog", self.browseCatalog, "catalog-button", primary=True))
        choices.addWidget(self._choice(
            "Import a GGUF file…",
            "Already have a .gguf model? Pick it, or drop it on the Library.",
            "Import a GGUF file…", self.importFile, "import-button"))
        choices.addWidget(self._choice(
            "From other apps",
            "Models from LM Studio, GPT4All, Ollama or the Hugging Face cache, used in place.",
            "Look for them", self.findOtherApps, "other-apps-button"))
        column.addLayout(choices)
        holder = QHBoxLayout()
        holder.addStretch(1)
        holder.addLayout(column)
        holder.addStretch(1)
        outer.addLayout(holder)
        outer.addStretch(3)

    def _choice(self, title: str, text: str, button_text: str, signal, name: str,
                primary: bool = False) -> QFrame:
        card = QFrame()
        card.setProperty("card", True)
        card.setMinimumWidth(200)
        card.setMaximumWidth(264)
        lay = QVBoxLayout(card)
        lay.setContentsMargins(16, 16, 16, 16)
        lay.setSpacing(8)
        lay.addWidget(label(title, role="cardtitle"))
        body = label(text, role="muted", wrap=True)
        body.setMinimumHeight(54)
        body.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(body, 1)
        button = QPushButton(button_text)
        button.setObjectName(name)
        button.setCursor(Qt.CursorShape.PointingHandCursor)
        if primary:
            button.setProperty("primary", True)
        button.clicked.connect(signal)
        lay.addWidget(button)
        return card
