"""The chat screen end to end (offscreen), on the real engine with generated models: no mocks.

Send → tokens stream in → Stop → Regenerate → Edit and resend → close → a new screen on the same
database shows the conversation and its stats; the app killed mid-reply keeps the partial reply,
marked interrupted; completion mode; the context warning; the worker's coalescing and shutdown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.core.chats import ChatStore
from app.core.engine import Engine, LoadSettings
from app.core.library import Library
from app.core.settings import load_settings
from app.gui.chat import ChatScreen
from app.gui.chat.prompt_inspector import decode_stops, encode_stops
from app.gui.chat.segments import split_markdown
from app.core.turns import ModelRef, TurnOptions, TurnRequest
from app.gui.workers import EngineWorker

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60_000  # ms; generous: the machine may be busy with other test runs


@pytest.fixture
def vicuna(home, make_model) -> str:
    """A tiny generated model named like Vicuna (detected: the vicuna-v1.1 template), imported."""
    return Library().import_file(make_model("tiny", name="vicuna-7b-v1.5")).id


class App:
    """One 'run' of the app: a store, an engine worker and a chat screen; close() is the quit."""

    def __init__(self, qtbot) -> None:
        self.store = ChatStore()
        self.worker = EngineWorker()
        self.screen = ChatScreen(self.store, self.worker, Library(), load_settings())
        self.screen.resize(1200, 800)
        qtbot.addWidget(self.screen)
        self.screen.show()
        self.closed = False

    def knobs(self, **values) -> None:
        for key, value in values.items():
            self.screen.parameters.fields[key].setValue(value)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.screen.shutdown()
            assert self.worker.dispose()
            assert not self.worker.thread_running
            self.store.close()


@pytest.fixture
def apps(qtbot):
    made: list[App] = []

    def make() -> App:
        made.append(App(qtbot))
        return made[-1]

    yield make
    for app in made:
        app.close()


def idle(screen: ChatScreen) -> bool:
    return not screen.is_busy()


def test_send_stop_regenerate_edit_and_find_it_all_after_a_restart(qtbot, apps, vicuna):
    app = apps()
    screen = app.screen
    assert screen.session.model().id == vicuna
    app.knobs(threads=1, context=2048, max_tokens=2000, seed=11, temperature=0.8)

    # Send; stop as soon as the first tokens arrive.
    stopped: list[int] = []

    def stop_once(_rid: int, _text: str) -> None:
        if not stopped:
            stopped.append(1)
            screen.stop()

    app.worker.tokens.connect(stop_once)
    screen.send("hello world")
    qtbot.waitUntil(lambda: bool(stopped), timeout=WAIT)
    qtbot.waitUntil(lambda: idle(screen), timeout=WAIT)
    app.worker.tokens.disconnect(stop_once)
    conv = app.store.conversations()[0]
    assert conv.title == "hello world" and conv.model_id == vicuna
    user, reply = app.store.messages(conv.id)
    assert (user.role, user.content) == ("user", "hello world")
    assert reply.state == "interrupted" and reply.stats["stop_reason"] == "cancelled"
    assert 0 < reply.stats["generated_tokens"] < 2000
    assert screen.messages.row(reply.id).text == reply.content
    assert "stop: stopped by you" in screen.messages.footer_text(reply.id)
    # The inspector names the template, detected from the file name.
    assert screen.inspector.template_label.text().startswith("Template: Vicuna")

    # Regenerate the stopped reply with a short limit: it runs to the end.
    app.knobs(max_tokens=24)
    screen.regenerate_action.trigger()
    qtbot.waitUntil(lambda: not idle(screen), timeout=WAIT)
    qtbot.waitUntil(lambda: idle(screen), timeout=WAIT)
    user, reply = app.store.messages(conv.id)
    assert reply.state == "complete" and reply.stats["stop_reason"] == "length"
    assert reply.stats["generated_tokens"] == 24 and reply.stats["decode_tps"] > 0
    assert reply.stats["model"] == vicuna and reply.stats["template"] == "vicuna-v1.1"
    assert reply.stats["seed"] == 11
    stats_text = screen.messages.footer_text(reply.id)
    assert "24 tokens" in stats_text and "tok/s" in stats_text and "first token" in stats_text
    assert "USER: hello world ASSISTANT:" in screen.inspector.prompt.toPlainText()

    # Edit the question and resend it with Enter: the old reply goes, a new one comes.
    screen.messages.trigger(user.id, "edit")  # what a click on its Edit button runs
    assert screen.composer.editing == user.id
    screen.composer.set_text("hello again")
    qtbot.keyClick(screen.composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not idle(screen), timeout=WAIT)
    qtbot.waitUntil(lambda: idle(screen), timeout=WAIT)
    messages = app.store.messages(conv.id)
    assert [(m.role, m.state) for m in messages] == [("user", "complete"),
                                                     ("assistant", "complete")]
    assert messages[0].content == "hello again" and messages[0].id == user.id
    final = messages[1]
    assert final.content and final.stats["generated_tokens"] == 24
    assert screen.messages.message_ids() == [user.id, final.id]
    app.close()

    # Start again: the conversation, its reply and the stats line are all there.
    again = apps()
    assert again.screen.current_conversation_id() == conv.id
    rows = again.screen.messages.rows()
    assert [(r.role, r.text) for r in rows] == [("user", "hello again"),
                                                ("assistant", final.content)]
    assert "24 tokens" in again.screen.messages.footer_text(final.id)
    assert again.screen.parameters.values()["max_tokens"] == 24  # the conversation's knobs
    items = again.screen.conversations.list
    assert items.count() == 1 and items.item(0).text() == "hello world"


def test_keyboard_enter_sends_shift_enter_breaks_the_line_esc_stops(qtbot, apps, vicuna):
    app = apps()
    screen = app.screen
    app.knobs(threads=1, context=2048, max_tokens=2000)
    edit = screen.composer.edit
    edit.setFocus()
    qtbot.keyClicks(edit, "line one")
    qtbot.keyClick(edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(edit, "line two")
    assert screen.composer.text() == "line one\nline two" and idle(screen)
    with qtbot.waitSignal(app.worker.tokens, timeout=WAIT):
        qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert screen.composer.text() == "" and screen.stop_action.isEnabled()
    qtbot.keyClick(edit, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: idle(screen), timeout=WAIT)
    reply = app.store.messages(screen.current_conversation_id())[-1]
    assert reply.state == "interrupted" and reply.stats["generated_tokens"] < 2000


CRASH_APP = r"""
import sqlite3, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from app.core.chats import ChatStore
from app.core.library import Library
from app.core.paths import get_paths
from app.core.settings import load_settings
from app.gui.chat import ChatScreen
from app.gui.workers import EngineWorker

app = QApplication([])
store = ChatStore()
screen = ChatScreen(store, EngineWorker(), Library(), load_settings())
for key, value in dict(threads=1, context=8192, max_tokens=8000).items():
    screen.parameters.fields[key].setValue(value)
screen.send("tell me a very long story")
db = sqlite3.connect(get_paths().chats_db)

def check():
    row = db.execute("SELECT length(content) FROM message WHERE state = 'streaming'").fetchone()
    if row and row[0]:
        print("streaming", row[0], flush=True)
        timer.stop()

timer = QTimer(interval=50, timeout=check)
timer.start()
sys.exit(app.exec())
"""


def test_a_reply_killed_mid_way_is_there_after_a_restart_marked_interrupted(
        qtbot, apps, home, make_model):
    model = Library().import_file(make_model("tiny", name="long-story", context_length=8192))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.Popen([sys.executable, "-c", CRASH_APP], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # the app says when the DB holds part of the reply
        assert line.startswith("streaming"), proc.stderr.read() if proc.poll() is not None else line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    app = apps()
    conv = app.store.conversations()[0]
    assert conv.model_id == model.id and conv.title == "tell me a very long story"
    user, reply = app.store.messages(conv.id)
    assert user.content == "tell me a very long story"
    assert reply.state == "interrupted" and len(reply.content) >= int(line.split()[1])
    assert app.screen.messages.row(reply.id).text == reply.content
    assert "interrupted" in app.screen.messages.footer_text(reply.id)


def test_completion_mode_streams_into_the_text_with_a_dalai_preset(qtbot, apps, vicuna):
    app = apps()
    screen = app.screen
    app.knobs(threads=1, context=2048, max_tokens=16, temperature=0.0)  # greedy: the same 16
    screen.toolbar.mode_buttons["completion"].click()
    assert screen.stack.currentWidget() is screen.completion
    view = screen.completion
    index = view.presets.findData("dalai-default")
    view.presets.setCurrentIndex(index)
    view.presets.activated.emit(index)
    assert view.editor.textCursor().selectedText() == ">PROMPT"
    view.go.click()  # >PROMPT is still there: refused, with the reason shown
    assert idle(screen) and "Replace >PROMPT" in screen.error_banner.label.text()
    qtbot.keyClicks(view.editor, "Name three colours.")
    prompt = view.text()
    assert "### Instruction:\nName three colours.\n\n### Response:\n" in prompt
    qtbot.keyClick(view.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not idle(screen), timeout=WAIT)
    qtbot.waitUntil(lambda: idle(screen), timeout=WAIT)
    conv = app.store.conversation(screen.current_conversation_id())
    assert conv.mode == "completion" and conv.template_id == "dalai-default"
    assert conv.title == "Name three colours."
    user, reply = app.store.messages(conv.id)
    assert user.content == prompt and reply.stats["template"] == "dalai-default"
    assert view.text() == prompt + reply.content and reply.content
    assert (reply.state, reply.stats["stop_reason"], reply.stats["generated_tokens"]) == (
        "complete", "length", 16)
    assert view.stats.text().startswith("16 tokens")


def test_a_conversation_longer_than_the_context_warns_and_sends_it_cut(qtbot, apps, vicuna,
                                                                       monkeypatch):
    store = ChatStore()
    conv = store.create_conversation(title="long", model_id=vicuna, params={
        "threads": 1, "context": 256, "max_tokens": 64})
    for i in range(6):
        store.add_message(conv.id, "user", f"question {i} " + "hello world " * 15)
        store.add_message(conv.id, "assistant", "the answer is yes " * 6)
    store.close()
    app = apps()
    screen = app.screen
    assert screen.current_conversation_id() == conv.id
    screen.session.load_model()
    banner = screen.context_banner
    qtbot.waitUntil(lambda: banner.isVisible() and "oldest" in banner.label.text(), timeout=WAIT)
    text = banner.label.text()
    assert "256 tokens" in text and "will not be sent" in text
    ids, faded = screen.messages.message_ids(), screen.messages.dropped_ids()
    assert faded and faded[0] == ids[0] and ids[-1] not in faded
    assert "left out" in screen.inspector.tokens.text()

    # Send: the prompt that reaches the engine is cut, oldest turns first, and fits.
    sent: list[str] = []
    real_generate = Engine.generate

    def generate(engine, prompt, params, **kw):  # the real engine, with its input noted
        sent.append(prompt)
        return real_generate(engine, prompt, params, **kw)

    monkeypatch.setattr(Engine, "generate", generate)
    prepared: list = []
    app.worker.promptReady.connect(lambda _rid, turn: prepared.append(turn))
    screen.send("last question")
    qtbot.waitUntil(lambda: bool(sent) and idle(screen), timeout=WAIT)
    [prompt] = sent
    [turn] = prepared
    assert prompt == turn.text and turn.dropped_turns > 0
    assert prompt.startswith("A chat between a curious user and an artificial intelligence "
                             "assistant.") and prompt.endswith("USER: last question ASSISTANT:")
    kept = [i for i in range(6) if f"question {i} " in prompt]
    assert kept == list(range(turn.dropped_turns, 6))  # the oldest went first, the rest whole
    assert prompt.count("the answer is yes") == 6 * len(kept)
    user, reply = app.store.messages(conv.id)[-2:]
    assert (user.content, reply.state) == ("last question", "complete")
    assert len(app.store.messages(conv.id)) == 14  # every message kept: only the prompt was cut
    # What the runner counted is what the plan said, and it leaves the reply its room.
    assert reply.stats["prompt_tokens"] == turn.prompt_tokens <= 256 - 64


def test_new_rename_search_and_delete_conversations(qtbot, apps, vicuna, monkeypatch):
    store = ChatStore()
    a = store.create_conversation(title="Llamas", model_id=vicuna)
    store.add_message(a.id, "user", "about alpacas")
    b = store.create_conversation(title="Other", model_id=vicuna)
    store.add_message(b.id, "user", "something else")
    store.close()
    app = apps()
    screen = app.screen
    lst = screen.conversations
    assert lst.list.count() == 2 and screen.current_conversation_id() == b.id
    screen.new_chat_action.trigger()
    # A new, unsaved conversation (id 0) with the same model; nothing stored until it is used.
    assert (screen.current_conversation_id(), screen.session.conv.model_id) == (0, vicuna)
    assert screen.messages.rows() == [] and lst.list.count() == 2
    lst.search.setText("alpaca")
    qtbot.waitUntil(lambda: lst.list.count() == 1, timeout=5000)
    assert lst.list.item(0).text() == "Llamas"
    lst.search.clear()
    qtbot.waitUntil(lambda: lst.list.count() == 2, timeout=5000)
    lst.renameRequested.emit(a.id, "Camelids")
    assert app.store.conversation(a.id).title == "Camelids"
    screen.open_conversation(a.id)
    assert screen.messages.rows()[0].text == "about alpacas"
    lst.deleteRequested.emit(a.id)
    assert [c.id for c in app.store.conversations()] == [b.id]
    assert screen.session.conv.id == 0  # a fresh draft after deleting the open one


def test_worker_coalesces_tokens_and_stops_a_load(qtbot, home, tiny_model):
    worker = EngineWorker(coalesce_ms=50)
    try:
        signals: list[str] = []
        worker.tokens.connect(lambda _rid, text: signals.append(text))
        request = TurnRequest(ModelRef("tiny", tiny_model), prompt="hello world",
                              options=TurnOptions(overrides={"threads": 1, "context": 1024,
                                                             "max_tokens": 400, "seed": 3}))
        with qtbot.waitSignal(worker.finished, timeout=WAIT) as done:
            worker.generate(request)
        result = done.args[1]
        assert result.stats.generated_tokens == 400 and result.stopped_by == "token_limit"
        assert result.state == "complete" and result.stats.seed == 3
        assert len(signals) < 400  # many pieces per signal: the event loop is not flooded
        # A stop sent before the load starts cancels it.
        with qtbot.waitSignal(worker.loadFailed, timeout=WAIT) as failed:
            worker.unload()
            worker.load(tiny_model, LoadSettings(threads=1, n_ctx=512))
            worker.stop()
        assert "cancelled" in failed.args[0]
    finally:
        assert worker.dispose()


def test_segments_and_stop_string_editing():
    segs = split_markdown("Hi\n\n```python\nprint(1)\n```\nafter\n```js\nlet x")
    assert [(s.kind, s.lang, s.closed) for s in segs] == [
        ("text", "", True), ("code", "python", True), ("text", "", True), ("code", "js", False)]
    assert segs[1].text == "print(1)" and segs[3].text == "let x"
    stops = ["\nUser:", "a\\b", "\t###"]
    assert decode_stops(encode_stops(stops)) == stops


def test_switching_conversation_mid_reply_stops_it_and_keeps_what_was_written(
        qtbot, apps, vicuna):
    store = ChatStore()
    other = store.create_conversation(title="Other", model_id=vicuna)
    store.add_message(other.id, "user", "an older question")
    store.close()
    app = apps()
    screen = app.screen
    screen.new_chat()
    app.knobs(threads=1, context=2048, max_tokens=2000)
    with qtbot.waitSignal(app.worker.tokens, timeout=WAIT):
        screen.send("hello world")
    busy = screen.session.conv.id
    screen.open_conversation(other.id)  # stops the reply; the worker still saves it
    assert idle(screen) and screen.messages.rows()[0].text == "an older question"
    qtbot.waitUntil(lambda: not app.worker.busy, timeout=WAIT)
    reply = app.store.messages(busy)[-1]
    assert reply.state == "interrupted" and reply.content
    screen.open_conversation(busy)
    assert screen.messages.rows()[-1].text == reply.content


def test_template_choice_applies_to_its_conversation_only_and_the_prompt_can_be_overridden(
        qtbot, apps, vicuna):
    app = apps()
    screen = app.screen
    app.knobs(threads=1, context=2048, max_tokens=8, temperature=0.0)
    combo = screen.toolbar.template
    index = combo.findData("chatml")
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    assert Library().model_settings(vicuna).template is None  # the model's default is kept
    assert "ChatML" in screen.inspector.template_label.text()
    # The inspector's text, edited, is what the next reply gets, once.
    screen.side.setVisible(True)
    screen.inspector.override.setChecked(True)
    screen.inspector.prompt.setPlainText("Once upon a time")
    qtbot.waitUntil(lambda: screen.session.conv.options.get("prompt_override")
                    == "Once upon a time", timeout=5000)
    with qtbot.waitSignal(app.worker.promptReady, timeout=WAIT) as sent:
        screen.send("ignored by the override")
    assert sent.args[1].text == "Once upon a time" and sent.args[1].template_id == "raw"
    qtbot.waitUntil(lambda: idle(screen), timeout=WAIT)
    assert not screen.inspector.override.isChecked()
    assert "prompt_override" not in app.store.conversation(
        screen.current_conversation_id()).options
    with qtbot.waitSignal(app.worker.promptReady, timeout=WAIT) as sent:
        screen.send("hello")
    assert sent.args[1].text.endswith("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n")
    assert "<|im_end|>" in sent.args[1].stop
    qtbot.waitUntil(lambda: idle(screen), timeout=WAIT)
    # Knobs changed in a chat are the model's defaults for its next chats.
    screen.new_chat()
    assert screen.parameters.values()["max_tokens"] == 8
    assert screen.parameters.values()["temperature"] == 0.0
    # The template chosen in that chat is not: the next chat is automatic (Vicuna) again…
    assert screen.inspector.template_label.text().startswith("Template: Vicuna")
    # …until the template menu's explicit action makes ChatML the model's default.
    index = combo.findData("chatml")
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    assert Library().model_settings(vicuna).template is None
    assert screen.toolbar.make_default_action.isEnabled()
    screen.toolbar.make_default_action.trigger()
    assert Library().model_settings(vicuna).template == "chatml"
    assert not screen.toolbar.make_default_action.isEnabled()  # it is the default now
    screen.new_chat()
    assert "ChatML" in screen.inspector.template_label.text()
    assert screen.toolbar.template.itemText(0).startswith("Auto: ChatML")
