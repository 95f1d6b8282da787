"""The chat screen (`ChatScreen`) and its parts.

The model: `ChatSession` (session.py) owns the screen's state and says each change as a signal;
its parts model_choices (the local and remote models), knobs (the parameters and their saving),
template_part (the template choice and "make it this model's default"), replies (the turns),
next_prompt (the preview and the context check). The views take the session in their constructor: chat_screen
(layout, actions, the shell's API), conversation_list, toolbar (model button, template picker,
modes, banners) with picker (the model picker popup), message_view (chat mode; bound to the
session by message_binding), completion_view (Dalai's completion mode), composer, find_bar,
parameter_panel, prompt_inspector; helpers: segments, highlight, style. demo seeds screenshot
data.
"""

from app.gui.chat.chat_screen import ChatScreen

__all__ = ["ChatScreen"]
