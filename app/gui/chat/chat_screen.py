"""The chat screen: conversations on the side, the conversation (chat bubbles or Dalai's
completion text) in the middle, parameters and the prompt inspector on the right.

    screen = ChatScreen(store, worker, library, settings)
    screen = ChatScreen(..., scan_library=False)   # the window hands its scan over later

The shell owns the four dependencies: it disposes the worker (`worker.dispose()`) and closes
the store after `screen.shutdown()`. The screen's state and behaviour are its `ChatSession`
(session.py); every widget here takes the session in its constructor and subscribes to it.
This module is the layout, the keyboard actions and the shell's public API.
"""

from __future__ import annotations

import gc
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QSplitter, QStackedWidget, QTabWidget, QVBoxLayout,
                               QWidget)

from app.core.chats import ChatStore
from app.core.library import Library
from app.core.settings import Settings
from app.core.templates import TemplateRegistry
from app.gui.chat import highlight
from app.gui.chat.completion_view import CompletionView
from app.gui.chat.composer import Composer
from app.gui.chat.conversation_list import ConversationList
from app.gui.chat.find_bar import FindBar
from app.gui.chat.message_binding import bind_messages
from app.gui.chat.message_view import MessageView
from app.gui.chat.parameter_panel import ParameterPanel
from app.gui.chat.prompt_inspector import PromptInspector
from app.gui.chat.session import ChatSession
from app.gui.chat.toolbar import Banner, ChatToolbar
from app.gui.overlay import float_banners
from app.gui.workers import EngineWorker


class ChatScreen(QWidget):
    """Signals for the shell: `statusMessage(str)` a sentence for the status bar;
    `engineStatus(dict)` {model, backend, state: idle|loading|generating|error, progress,
    tokens_per_s, n_ctx}; `libraryRequested()` when the user needs a model first."""

    statusMessage = Signal(str)
    engineStatus = Signal(dict)
    libraryRequested = Signal()
    libraryChanged = Signal()   # a model's file is gone: the window reads the library again

    def __init__(self, store: ChatStore, worker: EngineWorker, library: Library,
                 settings: Settings, parent: QWidget | None = None, *,
                 registry: TemplateRegistry | None = None, scan_library: bool = True) -> None:
        super().__init__(parent)
        self.setObjectName("chatScreen")
        self.session = session = ChatSession(store, worker, library, settings, registry, self)
        self.conversations = ConversationList(session)
        self.toolbar = ChatToolbar(session)
        self.messages = MessageView()
        bind_messages(session, self.messages)
        self.completion = CompletionView(session)
        self.composer = Composer(session)
        self.context_banner = Banner(closable=False)
        self.error_banner = Banner()
        self.parameters = ParameterPanel(session)
        self.inspector = PromptInspector(session)

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
        # The banners float over the foot of the conversation, just above the composer (the
        # draft's warning lowest, nearest the box): one appearing or hiding moves nothing.
        self.banners = float_banners(center, self.stack, self.error_banner, self.context_banner,
                                     self.composer.warning, margins=(16, 4, 16, 4), spacing=4)
        self.find_bar = FindBar(self.messages)
        self.find_overlay = float_banners(center, self.stack, self.find_bar, edge="top",
                                          margins=(16, 6, 16, 6))

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
        self._subscribe()
        session.start(scan=scan_library)
        QTimer.singleShot(1500, self, self._warm_up)  # not if the screen is gone by then

    def _subscribe(self) -> None:
        s = self.session
        s.opened.connect(self._opened)
        s.problem.connect(self.error_banner.show_message)
        s.problemCleared.connect(self.error_banner.hide)
        s.contextShown.connect(self._context)
        s.busyChanged.connect(lambda _busy: self.stop_action.setEnabled(s.can_stop))
        s.loadingChanged.connect(lambda *_: self.stop_action.setEnabled(s.can_stop))
        s.status.connect(self._status)
        s.libraryWanted.connect(self.libraryRequested)
        s.libraryStale.connect(self.libraryChanged)
        self.messages.libraryRequested.connect(self.libraryRequested)
        self.messages.inspectRequested.connect(self.show_prompt_of)
        self.conversations.exportRequested.connect(self.export)

    def _opened(self, conv, _messages) -> None:
        chat = conv.mode == "chat"
        self.stack.setCurrentWidget(self.messages if chat else self.completion)
        self.composer.setVisible(chat)
        self.context_banner.hide()

    def _context(self, view) -> None:
        if view.banner:
            self.context_banner.show_message(view.banner, view.kind)
        else:
            self.context_banner.hide()

    def _status(self, info: dict, message: str) -> None:
        self.engineStatus.emit(info)
        self.statusMessage.emit(message)

    def _warm_up(self) -> None:
        """Once idle after start-up, pay the first-use costs now rather than in the first reply:
        Pygments is imported in a thread, the message list makes what it makes lazily; then
        gc.freeze() keeps the start-up heap out of the garbage collector's full passes (each
        took ~20-40 ms on the GUI thread, a visible pause mid-reply)."""
        highlight.prewarm()
        MessageView.warm_up()
        gc.freeze()

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

        s = self.session
        self.new_chat_action = action("New chat", QKeySequence.StandardKey.New,
                                      lambda: self.new_chat())
        self.search_action = action("Search chats", QKeySequence.StandardKey.Find,
                                    self.focus_search)
        self.stop_action = action("Stop", Qt.Key.Key_Escape, s.stop,
                                  "Stop the reply or the model load (Esc)")
        self.stop_action.setEnabled(False)
        self.regenerate_action = action("Regenerate", "Ctrl+Shift+R", s.regenerate_last)
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
        self.session.new_chat(model_id)
        self.composer.focus()

    def chat_with_model(self, model_id: str) -> None:
        """The Library's "Chat with this model": a new chat with it, and start loading it."""
        self.session.new_chat(model_id, load=True)
        self.composer.focus()

    def open_conversation(self, conversation_id: int) -> None:
        self.session.open(conversation_id)

    def send(self, text: str) -> bool:
        return self.session.send(text)

    def stop(self) -> None:
        self.session.stop()

    def export_current(self) -> None:
        """Ask where, then save the open conversation as Markdown (.md) or JSON (.json)."""
        conv = self.session.conv
        if conv is not None and conv.id:
            self.export(conv.id)

    def export(self, cid: int) -> None:
        conv = self.session.store.conversation(cid)
        safe = "".join(c if c.isalnum() or c in " -_" else "_" for c in conv.title).strip()
        path, _ = QFileDialog.getSaveFileName(self, "Export conversation",
                                              str(Path.home() / f"{safe or 'chat'}.md"),
                                              "Markdown (*.md);;JSON (*.json)")
        if path:
            self.session.export(cid, path)

    def focus_search(self) -> None:
        self.conversations.focus_search()

    def find_in_conversation(self) -> None:
        """Ctrl+F (the window's Chat → Find in conversation): the find bar over the
        conversation, the keyboard in it (in completion mode: the conversations' search)."""
        if self.stack.currentWidget() is self.messages:
            self.find_bar.open_bar()
        else:
            self.conversations.focus_search()

    def choose_model(self) -> None:
        """Ctrl+K: the model picker, open, with the keyboard in its search field."""
        self.toolbar.open_picker()

    def show_prompt_of(self, message_id: int) -> None:
        """A reply's "Show prompt": the side panel's Prompt tab with what was sent for it."""
        self.toolbar.panel.setChecked(True)
        self.side.setCurrentWidget(self.inspector)
        self.session.next_prompt.show_for(message_id)

    def focus_composer(self) -> None:
        """The keyboard to the message field (or the completion text in completion mode)."""
        if self.composer.isVisible():
            self.composer.focus()
        else:
            self.completion.setFocus()

    def refresh_models(self, scanned: list | None = None) -> None:
        """Call when the library changed (import, download finished, delete); `scanned`:
        (LocalModel, family) pairs the window already has (else the library is read)."""
        self.session.refresh_models(scanned)

    def apply_settings(self, settings: Settings) -> None:
        self.session.apply_settings(settings)

    def current_conversation_id(self) -> int | None:
        return self.session.conv.id if self.session.conv else None

    def is_busy(self) -> bool:
        return self.session.busy

    def shutdown(self) -> None:
        """Stop any reply (its text so far is saved as interrupted); then the shell disposes
        the worker and closes the store."""
        self.session.shutdown()
