"""The message list subscribed to the chat session: the list (message_view.py) is a view that
knows nothing of sessions, so this is where the session's events become its calls and its
requests (edit, regenerate) become the session's.

    bind_messages(session, screen.messages)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.gui.chat.message_view import MessageView
    from app.gui.chat.session import ChatSession


def bind_messages(session: "ChatSession", view: "MessageView") -> None:
    def opened(conv: Any, messages: list) -> None:
        if conv.mode == "chat":
            view.set_conversation(messages, session.who)

    session.opened.connect(opened)
    session.messageAdded.connect(view.append_message)
    session.messageEdited.connect(lambda message_id, text: view.update_message(message_id,
                                                                               text=text))
    session.messagesRemoved.connect(view.remove_from)
    session.replyStarted.connect(lambda mode, message, who: mode == "chat"
                                 and view.begin_stream(message, who))
    session.replyGrew.connect(view.append)
    session.replyEnded.connect(lambda mode, state, stats, text: mode == "chat"
                               and view.end_stream(state, stats, text))
    session.busyChanged.connect(view.set_busy)
    session.contextShown.connect(lambda context: view.set_dropped_turns(context.dropped))
    session.modelsChanged.connect(lambda: view.set_has_models(bool(session.models.entries())))
    view.editRequested.connect(session.replies.edit)
    view.regenerateRequested.connect(session.replies.regenerate)
