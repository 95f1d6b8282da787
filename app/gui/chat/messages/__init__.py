"""The message list that scales (issue 17 §1): model (rows), layout (heights and positions),
render (cached documents), painter (the delegate), view (the scroll area), interaction (mouse,
keyboard, actions, find). The chat screen uses it through app/gui/chat/message_view.py."""
