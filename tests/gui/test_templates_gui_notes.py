"""The prompt inspector says where a system prompt went when the model's own template has no
system role (Gemma 7B it's published template refuses one)."""

from __future__ import annotations

import json
from pathlib import Path

from app.core.chats import ChatStore
from app.core.library import Library
from app.core.settings import load_settings
from app.gui.chat import ChatScreen
from app.gui.workers import EngineWorker

GEMMA = next(c["template"] for c in json.loads(
    (Path(__file__).parents[1] / "data" / "llama_cpp_chat_templates.json").read_text("utf-8"))["cases"]
    if c["name"] == "google/gemma-7b-it")


def test_inspector_notes_where_the_system_prompt_went(qtbot, home, make_model):
    Library().import_file(make_model("tiny", name="gemma-like", chat_template=GEMMA))
    store, worker = ChatStore(), EngineWorker()
    screen = ChatScreen(store, worker, Library(), load_settings())
    qtbot.addWidget(screen)
    screen.show()
    try:
        screen.new_chat()
        inspector = screen.inspector
        inspector.system.setPlainText("Be brief.")
        screen.composer.set_text("Hello!")
        qtbot.waitUntil(lambda: not inspector.notes.isHidden(), timeout=10_000)
        assert inspector.prompt.toPlainText() == ("<start_of_turn>user\nBe brief.\nHello!"
                                                  "<end_of_turn>\n<start_of_turn>model\n")
        assert inspector.notes.text() == (
            "Note: gemma-like's own chat template refuses a system message (\"System role not "
            "supported\"), so the system prompt was put at the start of the first user message "
            "(as llama.cpp does).")
        inspector.system.setPlainText("")  # no system prompt: nothing to say
        qtbot.waitUntil(inspector.notes.isHidden, timeout=10_000)
    finally:
        screen.shutdown()
        assert worker.dispose()
        store.close()
