"""First run, no model yet: a short welcome that points to the catalog and to importing a file.
And, in the chat's place when the chats database cannot be opened, `ChatsProblem`."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.gui import theme
from app.gui.widgets import label


def centred_column(page: QWidget, spacing: int) -> QVBoxLayout:
    """The layout of a page whose content is one column, centred across and a little above the
    middle; the column to fill."""
    outer = QVBoxLayout(page)
    outer.addStretch(2)
    column = QVBoxLayout()
    column.setSpacing(spacing)
    holder = QHBoxLayout()
    holder.addStretch(1)
    holder.addLayout(column)
    holder.addStretch(1)
    outer.addLayout(holder)
    outer.addStretch(3)
    return column


class WelcomeScreen(QWidget):
    browseCatalog = Signal()
    importFile = Signal()
    findOtherApps = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("WelcomeScreen")
        column = centred_column(self, spacing=14)
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


class ChatsProblem(QWidget):
    """In place of the chat screen when the chats database cannot be opened: which file, what is
    wrong and what to do, with the way out as buttons. A damaged database is set aside only when
    the user presses "Set it aside…"; the rest of the window works meanwhile."""

    setAsideRequested = Signal()
    retryRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ChatsProblem")
        column = centred_column(self, spacing=12)
        column.addWidget(label("Your conversations cannot be opened", role="title"))
        self.message = label("", wrap=True, selectable=True)
        self.message.setObjectName("chats-problem-text")
        self.message.setMaximumWidth(620)
        column.addWidget(self.message)
        column.addWidget(label("The Library, Downloads and Settings work meanwhile.", role="muted"))
        buttons = QHBoxLayout()
        self.set_aside_button = QPushButton("Set it aside and start a new one")
        self.set_aside_button.setObjectName("set-aside-button")
        self.set_aside_button.setProperty("primary", True)
        self.set_aside_button.setToolTip("The damaged file is renamed with today's date and "
                                         "kept beside the new one; nothing is deleted")
        self.set_aside_button.clicked.connect(self.setAsideRequested)
        self.retry_button = QPushButton("Try again")
        self.retry_button.setObjectName("retry-button")
        self.retry_button.clicked.connect(self.retryRequested)
        buttons.addWidget(self.set_aside_button)
        buttons.addWidget(self.retry_button)
        buttons.addStretch(1)
        column.addLayout(buttons)

    def show_problem(self, text: str, kind: str) -> None:
        """`kind` as ChatStoreError's: a damaged file may be set aside; one a newer Corral wrote
        waits for an update; anything else (a read-only or full folder) may be tried again."""
        self.message.setText(text[:1].upper() + text[1:])
        self.set_aside_button.setVisible(kind == "damaged")
        self.retry_button.setVisible(kind not in ("damaged", "newer"))

    def text(self) -> str:
        return self.message.text()
