"""The whole window, as a user goes through it (offscreen, the real engine, a generated model):
import a GGUF file through the Library screen → Chat → send → tokens stream in → Stop →
Regenerate → edit and resend → quit → start again: the conversation and its stats are back.

test_gui_chat.py covers the chat screen's parts in detail; this one checks they are wired
together in the real MainWindow, from an empty home folder.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

WAIT = 60_000  # ms; generous: the machine may be busy with other test runs


@pytest.fixture
def start_app(open_window, qtbot):
    """start_app() -> a MainWindow on the test's home, ready (its chat screen built)."""
    def start():
        window = open_window()
        qtbot.waitUntil(lambda: window.is_ready, timeout=WAIT)
        return window
    return start


def test_import_chat_stop_regenerate_edit_quit_and_find_it_again(start_app, qtbot, make_model):
    model_file = make_model("tiny", name="vicuna-7b-v1.5")
    window = start_app()
    qtbot.waitUntil(window.showing_welcome, timeout=WAIT)  # an empty library: the welcome

    # Import through the Library screen (what the button and drag-and-drop do, minus the dialog).
    library = window.show_screen("library")
    library.import_paths([model_file])
    qtbot.waitUntil(lambda: bool(window.library_state.usable), timeout=WAIT)
    assert [i.model.id for i in window.library_state.usable] == [model_file.stem]

    window.show_screen("chat")
    qtbot.waitUntil(lambda: window.chat_screen is not None and not window.showing_welcome(),
                    timeout=WAIT)
    chat = window.chat_screen
    qtbot.waitUntil(lambda: chat.session.model() is not None, timeout=WAIT)
    assert chat.session.model().id == model_file.stem
    for key, value in dict(threads=1, max_tokens=2000, seed=5, temperature=0.8).items():
        chat.parameters.fields[key].setValue(value)

    # Send with Enter; stop once tokens are on screen.
    streamed: list[str] = []
    window.engine.tokens.connect(lambda _rid, text: streamed.append(text))
    chat.composer.set_text("hello llama")
    qtbot.keyClick(chat.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(streamed) and bool(chat.messages.rows()[-1].text), timeout=WAIT)
    chat.stop()
    qtbot.waitUntil(lambda: not chat.is_busy(), timeout=WAIT)
    store = chat.session.store
    conv = store.conversations()[0]
    user, reply = store.messages(conv.id)
    assert user.content == "hello llama" and reply.state == "interrupted"
    # Everything streamed was saved, and nothing else: the whole text, on screen too.
    assert reply.content and "".join(streamed) == reply.content
    assert chat.messages.row(reply.id).text == reply.content
    assert "stop: stopped by you" in chat.messages.footer_text(reply.id)

    # Regenerate with a short limit: the stopped reply is replaced by a complete one.
    chat.parameters.fields["max_tokens"].setValue(16)
    streamed.clear()
    chat.regenerate_action.trigger()
    qtbot.waitUntil(lambda: chat.is_busy(), timeout=WAIT)
    qtbot.waitUntil(lambda: not chat.is_busy(), timeout=WAIT)
    user, reply = store.messages(conv.id)
    assert reply.state == "complete" and reply.stats["generated_tokens"] == 16
    assert "".join(streamed) == reply.content == chat.messages.row(reply.id).text

    # Edit the question and resend it.
    chat.messages.trigger(user.id, "edit")  # what a click on its Edit button runs
    streamed.clear()
    chat.composer.set_text("hello alpaca")
    qtbot.keyClick(chat.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: chat.is_busy(), timeout=WAIT)
    qtbot.waitUntil(lambda: not chat.is_busy(), timeout=WAIT)
    user, reply = store.messages(conv.id)
    assert user.content == "hello alpaca" and reply.state == "complete"
    assert reply.stats["generated_tokens"] == 16 and reply.stats["template"] == "vicuna-v1.1"
    assert "".join(streamed) == reply.content == chat.messages.row(reply.id).text
    final = reply.content
    window.close()  # quit: the engine, the chat database and the downloads are shut down

    # Start again on the same home folder: straight to the chat, the conversation and its stats.
    again = start_app()
    qtbot.waitUntil(lambda: again.chat_screen is not None, timeout=WAIT)
    chat = again.chat_screen
    qtbot.waitUntil(lambda: chat.current_conversation_id() == conv.id, timeout=WAIT)
    rows = chat.messages.rows()
    assert [(r.role, r.text) for r in rows] == [("user", "hello alpaca"), ("assistant", final)]
    stats = chat.messages.footer_text(rows[1].message_id)
    assert "16 tokens" in stats and "tok/s" in stats and "first token" in stats
    assert not again.showing_welcome()
