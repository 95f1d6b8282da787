"""The chat screen (`ChatScreen`) and its parts.

Views (layout and painting): chat_screen (the screen's layout, actions, public API),
conversation_list, toolbar (model / template pickers, modes, banners), message_view and bubble
(chat mode), completion_view (Dalai's completion mode), composer, parameter_panel,
prompt_inspector; helpers: segments, highlight, style. Behaviour: controller, turns, context
(ChatController and its mixins), resolve (Qt-free choices). demo seeds screenshot data.
"""

from app.gui.chat.chat_screen import ChatScreen

__all__ = ["ChatScreen"]
