"""The chat screen: conversations on the side, the conversation (chat bubbles or Dalai's
completion text) in the middle, parameters and the prompt inspector on the right.

    screen = ChatScreen(store, worker, library, settings)

The shell owns the four dependencies: it disposes the worker (`worker.dispose()`) and closes
the store after `screen.shutdown()`. Behaviour lives in `ChatController` (controller.py); this
module is layout, the public API and the keyboard actions.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QSplitter, QStackedWidget, QTabWidget, QVBoxLayout, QWidget)

from app.core.chats import ChatStore
from app.core.library import Library
from app.core.settings import Settings
from app.core.templates import TemplateRegistry
from app.gui.chat.completion_view import CompletionView
from app.gui.chat.composer import Composer
from app.gui.chat.controller import ChatController
from app.gui.chat.conversation_list import ConversationList
from app.gui.chat.message_view import MessageView
from app.gui.chat.parameter_panel import ParameterPanel
from app.gui.chat.prompt_inspector import PromptInspector
from app.gui.chat.toolbar import Banner, ChatToolbar
from app.gui.overlay import EdgeOverlay
from app.gui.workers import EngineWorker


class ChatScreen(QWidget):
    """Signals for the shell: `statusMessage(str)` a sentence for the status bar;
    `engineStatus(dict)` {model, backend, state: idle|loading|generating|error, progress,
    tokens_per_s, n_ctx}; `libraryRequested()` when the user needs a model first."""

    statusMessage = Signal(str)
    engineStatus = Signal(dict)
    libraryRequested = Signal()

    def __init__(self, store: ChatStore, worker: EngineWorker, library: Library,
                 settings: Settings, parent: QWidget | None = None, *,
                 registry: TemplateRegistry | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatScreen")
        self.conversations = ConversationList()
        self.toolbar = ChatToolbar()
        self.messages = MessageView()
        self.completion = CompletionView()
        self.composer = Composer()
        self.context_banner = Banner(closable=False)
        self.error_banner = Banner()
        self.parameters = ParameterPanel()
        self.inspector = PromptInspector()

        self.stack = QStackedWidget()
        self.stack.addWidget(self.messages)
        self.stack.addWidget(self.completion)
        center = QWidget()
        col = QVBoxLayout(center)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        col.addWidget(self.toolbar)
        col.addWidget(self.stack, 1)
        col.addWidget(self.composer)
        # The banners float over the foot of the conversation, just above the composer: one
        # appearing or hiding moves nothing (in the layout they resized it by 28-49 px).
        self.banners = EdgeOverlay(center, self.stack, "bottom", margins=(16, 4, 16, 4),
                                   spacing=4)
        self.banners.add(self.error_banner)
        self.banners.add(self.context_banner)

        self.side = QTabWidget()
        self.side.setDocumentMode(True)
        self.side.addTab(self.parameters, "Parameters")
        self.side.addTab(self.inspector, "Prompt")
        self.side.setMinimumWidth(280)
        self.conversations.setMinimumWidth(180)

        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.conversations)
        self.splitter.addWidget(center)
        self.splitter.addWidget(self.side)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([240, 760, 320])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.splitter)
        self.side.setVisible(False)
        self.toolbar.panelToggled.connect(self.side.setVisible)

        self._make_actions()
        self.controller = ChatController(self, store, worker, library, settings,
                                         registry or TemplateRegistry())

    # ------------------------------------------------------------------ actions
    def _make_actions(self) -> None:
        def action(text: str, keys, slot, tip: str = "") -> QAction:
            a = QAction(text, self)
            if keys:
                a.setShortcut(QKeySequence(keys))
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            a.setToolTip(tip or text)
            a.triggered.connect(slot)
            self.addAction(a)
            return a

        self.new_chat_action = action("New chat", QKeySequence.StandardKey.New,
                                      lambda: self.new_chat())
        self.search_action = action("Search chats", QKeySequence.StandardKey.Find,
                                    self.focus_search)
        self.stop_action = action("Stop", Qt.Key.Key_Escape, lambda: self.stop(),
                                  "Stop the reply or the model load (Esc)")
        self.stop_action.setEnabled(False)
        self.regenerate_action = action("Regenerate", "Ctrl+Shift+R",
                                        lambda: self.controller.regenerate_last())
        self.panel_action = action("Show parameters and prompt", "Ctrl+Shift+P",
                                   lambda: self.toolbar.panel.toggle())
        self.export_action = action("Export chat…", None, lambda: self.export_current(),
                                    "Save this conversation as Markdown or JSON")

    def actions_for_shell(self) -> list[QAction]:
        """New chat (Ctrl+N), Search (Ctrl+F), Stop (Esc), Regenerate (Ctrl+Shift+R),
        Parameters panel (Ctrl+Shift+P), Export chat… — for the shell's menus."""
        return [self.new_chat_action, self.search_action, self.stop_action,
                self.regenerate_action, self.panel_action, self.export_action]

    # ------------------------------------------------------------------ public API
    def new_chat(self, model_id: str | None = None) -> None:
        self.controller.new_chat(model_id)

    def chat_with_model(self, model_id: str) -> None:
        """The Library's "Chat with this model": a new chat with it, and start loading it."""
        self.controller.new_chat(model_id, load=True)

    def open_conversation(self, conversation_id: int) -> None:
        self.controller.open(conversation_id)

    def send(self, text: str) -> None:
        self.controller.send(text)

    def stop(self) -> None:
        self.controller.stop()

    def export_current(self) -> None:
        """Ask where, then save the open conversation as Markdown (.md) or JSON (.json)."""
        if self.controller.conv is not None and self.controller.conv.id:
            self.controller.export(self.controller.conv.id)

    def focus_search(self) -> None:
        self.conversations.focus_search()

    def find_in_conversation(self) -> None:
        """Ctrl+F (the window's Chat → Find in conversation). For now the conversation list's
        search, which matches the text of every message and lists the chats holding it; the
        chat view that scales (issue 17 §1) gives this its own find bar."""
        self.conversations.focus_search()

    def choose_model(self) -> None:
        """Ctrl+K: the model picker, open, with the keyboard in it."""
        self.toolbar.model.setFocus()
        self.toolbar.model.showPopup()

    def focus_composer(self) -> None:
        """The keyboard to the message field (or the completion text in completion mode)."""
        if self.composer.isVisible():
            self.composer.focus()
        else:
            self.completion.setFocus()

    def refresh_models(self) -> None:
        """Call when the library changed (import, download finished, delete)."""
        self.controller.refresh_models()

    def apply_settings(self, settings: Settings) -> None:
        self.controller.apply_settings(settings)

    def current_conversation_id(self) -> int | None:
        return self.controller.conv.id if self.controller.conv else None

    def is_busy(self) -> bool:
        return self.controller.active is not None

    def shutdown(self) -> None:
        """Stop any reply (its text so far is saved as interrupted); then the shell disposes
        the worker and closes the store."""
        self.controller.shutdown()
