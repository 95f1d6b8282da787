"""The chat screen (`ChatScreen`) and its parts: conversation list, chat and completion views,
composer, parameter panel, prompt inspector. Behaviour is in controller.py; the rest is layout."""

from app.gui.chat.chat_screen import ChatScreen

__all__ = ["ChatScreen"]
