"""The chat window under real use (issue 17 §2, §3): a 20,000-line paste is warned about in
the composer before it is sent (its token count, "at least" when counted from its bytes, and
what will happen) and never sent as it is, while an empty composer never shows a warning; Stop
(Esc) during a long prompt's evaluation ends the reply at once and its footer says why; a
failed model load is said once, in the reply's footer; the model picker is searched per
keystroke among 200 models and driven with the keyboard. pytest-qt, offscreen, the real engine
on generated models."""

from __future__ import annotations

import os
import re
import time

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from app.core.chats import ChatStore
from app.core.library import Library
from app.testing.chat_screens import chat_screens, set_knobs

pytestmark = pytest.mark.timeout(300)
WAIT = 60_000
LINE = "a line of pasted log output, with some words and numbers 12345\n"  # 62 bytes


@pytest.fixture
def screens(qtbot):
    with chat_screens(qtbot) as make:
        yield make


def test_a_huge_paste_is_warned_about_before_sending_and_an_empty_composer_never_is(
        qtbot, screens, home, make_model):
    model = Library().import_file(make_model("tiny", name="vicuna-7b-v1.5"))
    store = ChatStore()  # a conversation whose last message alone cannot fit (sent long ago)
    conv = store.create_conversation(title="old", model_id=model.id,
                                     params={"context": 512, "threads": 1, "max_tokens": 64})
    store.add_message(conv.id, "user", "hello " * 3000)
    store.close()
    screen = screens()
    session, composer = screen.session, screen.composer
    assert screen.current_conversation_id() == conv.id
    checked: list = []
    session.contextShown.connect(checked.append)
    session.load_model()
    qtbot.waitUntil(lambda: session.worker.model is not None and bool(checked), timeout=WAIT)
    # The composer is empty: no warning and no banner, though the next prompt cannot fit.
    assert "the last message alone needs" in checked[-1].tokens
    assert not composer.warning.isVisible() and not screen.context_banner.isVisible()
    assert not screen.error_banner.isVisible()

    # 20,000 lines pasted: the warning comes, with the count and what will happen.
    paste = LINE * 20_000
    QGuiApplication.clipboard().setText(paste)
    composer.edit.setFocus()
    composer.edit.paste()
    qtbot.waitUntil(composer.warning.isVisible, timeout=WAIT)
    said = composer.warning.label.text()
    found = re.fullmatch(r"Too long for this model: your message is at least ([\d,]+) tokens, "
                         r"and the context holds 512 \(64 kept for the reply\)\. It will not be "
                         r"sent as it is: shorten it, or raise the context size in Parameters\.",
                         said)
    assert found, said
    least = int(found.group(1).replace(",", ""))
    assert least >= len(paste.encode()) // session.worker.model.max_token_bytes
    qtbot.keyClick(composer.edit, Qt.Key.Key_End)  # the box still takes keys
    qtbot.keyClicks(composer.edit, "!")
    assert composer.text() == paste + "!"
    qtbot.waitUntil(lambda: session.next_prompt.refusal(paste + "!") is not None, timeout=WAIT)
    said = composer.warning.label.text()  # counted again with the "!"

    # Enter: not sent (nothing saved, the text kept), and said where the warning is.
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    assert not screen.is_busy() and composer.text() == paste + "!"
    assert [m.content for m in session.store.messages(conv.id)] == ["hello " * 3000]
    assert composer.warning.label.text() == f"Not sent. {said}"
    assert not screen.error_banner.isVisible()

    # Emptied: the warning goes at once (no check needed to say nothing).
    composer.edit.selectAll()
    qtbot.keyClick(composer.edit, Qt.Key.Key_Delete)
    assert composer.text() == "" and not composer.warning.isVisible()

    # Pasted and sent at once, before any check answered: checked first, and not sent either.
    composer.set_text(paste)
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: composer.warning.label.text().startswith("Not sent. Too long"),
                    timeout=WAIT)
    assert [m.content for m in session.store.messages(conv.id)] == ["hello " * 3000]
    assert composer.text() == paste and not screen.is_busy()


def test_a_long_draft_that_fits_is_sent_once_checked(qtbot, screens, home, make_model):
    Library().import_file(make_model("tiny", name="vicuna-7b-v1.5"))
    screen = screens()
    session, composer = screen.session, screen.composer
    set_knobs(screen, context=2048, threads=1, max_tokens=8)
    draft = "question " * 1800  # over 16,000 characters, under 2048 tokens
    composer.set_text(draft)
    qtbot.keyClick(composer.edit, Qt.Key.Key_Return)  # the model is loaded and it is checked
    qtbot.waitUntil(lambda: not screen.is_busy() and session.conv.id
                    and len(session.store.messages(session.conv.id)) == 2, timeout=WAIT)
    user, reply = session.store.messages(session.conv.id)
    assert user.content == draft and composer.text() == ""
    assert reply.state == "complete" and reply.stats["generated_tokens"] == 8
    assert 1800 < reply.stats["prompt_tokens"] <= 2048 - 8
    assert not composer.warning.isVisible()


def test_stop_during_prompt_evaluation_ends_the_reply_at_once_and_says_why(
        qtbot, screens, home, make_model):
    Library().import_file(make_model("small", name="vicuna-7b-v1.5"))
    screen = screens()
    session = screen.session
    set_knobs(screen, context=2048, threads=2, max_tokens=32)
    progress: list[tuple[int, int]] = []
    session.worker.promptProgress.connect(lambda _rid, done, total: progress.append((done, total)))
    screen.composer.set_text("the history of the llama " * 200)
    screen.composer.edit.setFocus()
    qtbot.keyClick(screen.composer.edit, Qt.Key.Key_Return)
    # A batch of the long prompt evaluated, more to come: Esc now.
    qtbot.waitUntil(lambda: any(0 < done < total for done, total in progress), timeout=WAIT)
    t0 = time.perf_counter()
    qtbot.keyClick(screen.composer.edit, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not screen.is_busy() and not session.worker.busy, timeout=WAIT)
    took = time.perf_counter() - t0
    assert took < 1.5, took  # the issue asks for 0.5 s; generous on a loaded machine
    reply = session.store.messages(session.conv.id)[-1]
    assert (reply.role, reply.state, reply.content) == ("assistant", "interrupted", "")
    assert reply.stats["stopped_by"] == "user" and reply.stats.get("aborted_in_prompt")
    assert screen.messages.footer_text(reply.id).endswith("stop: stopped by you")
    assert not screen.error_banner.isVisible()


def test_a_failed_model_load_is_said_once_in_the_reply(qtbot, screens, home, make_model):
    model = Library().import_file(make_model("tiny", name="vicuna-7b-v1.5"))
    screen = screens()
    session = screen.session
    problems: list[str] = []
    session.problem.connect(lambda text, _kind: problems.append(text))
    load_failures: list[str] = []
    session.worker.loadFailed.connect(load_failures.append)
    # Damaged since it was listed (its size and time kept, so the library still lists it):
    # the engine cannot load it.
    st = model.path.stat()
    with open(model.path, "r+b") as f:
        f.write(b"\0" * st.st_size)
    os.utime(model.path, ns=(st.st_atime_ns, st.st_mtime_ns))
    set_knobs(screen, threads=1, max_tokens=8)
    assert screen.send("hello")
    qtbot.waitUntil(lambda: not screen.is_busy() and not session.worker.busy, timeout=WAIT)
    user, reply = session.store.messages(session.conv.id)
    assert (user.content, reply.state, reply.content) == ("hello", "error", "")
    error = reply.stats["error"]
    assert load_failures == [error]  # the worker said it twice: as a load and as the reply
    assert screen.messages.footer_text(reply.id).endswith(f"stop: error · error: {error}")
    assert problems == [] and not screen.error_banner.isVisible()  # said once: in the footer
    assert not screen.toolbar.progress.isVisible()  # the loading shown no more


def test_the_model_picker_searches_200_models_per_keystroke_and_is_driven_by_the_keyboard(
        qtbot, screens, home):
    from app.testing.many_models import seed_library

    seed_library(home / "models", 200)
    screen = screens()
    session, picker = screen.session, screen.toolbar.picker
    before = session.conv.model_id
    screen.choose_model()  # Ctrl+K: open, the keyboard in its search field
    qtbot.waitUntil(lambda: picker.isVisible() and picker.search.hasFocus(), timeout=5000)
    assert len(picker.shown_entries()) == 200
    assert picker.count.text() == "200 models · Enter chooses · Esc closes"
    assert picker.current_entry().id == before  # the chat's model, selected
    qtbot.keyClicks(picker.search, "mistral q4_k")
    shown = [e.id for e in picker.shown_entries()]
    assert shown == ["mistral-7b-instruct-v0.2.Q4_K_M", "openhermes-2.5-mistral-7b.Q4_K_M"]
    assert picker.count.text() == "2 of 200 models"
    first, second = picker.shown_entries()
    assert first.detail.startswith("mistral · ") and first.quant in first.detail
    assert picker.current_entry() is first
    qtbot.keyClick(picker.search, Qt.Key.Key_Down)
    assert picker.current_entry() is second
    qtbot.keyClick(picker.search, Qt.Key.Key_Down)  # the last one stays
    assert picker.current_entry() is second
    qtbot.keyClick(picker.search, Qt.Key.Key_Up)
    assert picker.current_entry() is first
    qtbot.keyClick(picker.search, Qt.Key.Key_Return)
    assert not picker.isVisible() and session.conv.model_id == first.id
    assert screen.toolbar.model.full == f"{first.name}  ({first.detail})"

    # Nothing matches: Enter chooses nothing; Esc closes; the model stays.
    screen.choose_model()
    qtbot.waitUntil(picker.isVisible, timeout=5000)
    qtbot.keyClicks(picker.search, "no such model")
    assert picker.shown_entries() == [] and picker.count.text() == "0 of 200 models"
    qtbot.keyClick(picker.search, Qt.Key.Key_Return)
    assert picker.isVisible()
    qtbot.keyClick(picker.search, Qt.Key.Key_Escape)
    assert not picker.isVisible() and session.conv.model_id == first.id


def test_ctrl_f_finds_in_the_conversation_with_a_count_next_previous_and_esc(
        qtbot, screens, home, make_model):
    model = Library().import_file(make_model("tiny", name="vicuna-7b-v1.5"))
    store = ChatStore()
    conv = store.create_conversation(title="llamas", model_id=model.id)
    ids = []
    for i in range(60):  # the matches are spread over a conversation longer than the window
        ids.append(store.add_message(conv.id, "user", f"question {i} about alpacas").id)
        text = "A **llama** is not an alpaca." if i % 20 == 0 else f"answer {i}"
        store.add_message(conv.id, "assistant", text)
    store.close()
    screen = screens()
    bar, view = screen.find_bar, screen.messages
    assert screen.current_conversation_id() == conv.id and not bar.isVisible()
    screen.find_in_conversation()
    qtbot.waitUntil(lambda: bar.isVisible() and bar.field.hasFocus(), timeout=5000)
    qtbot.keyClicks(bar.field, "LLAMA")
    qtbot.waitUntil(lambda: bar.count.text() == "3 of 3", timeout=5000)  # the last, nearest
    matched = sorted({m.message_id for m in view.matches()})
    assert len(matched) == 3 and view.find_state() == (2, 3)
    qtbot.keyClick(bar.field, Qt.Key.Key_Return)  # next: wraps to the first
    assert view.find_state() == (0, 3) and bar.count.text() == "1 of 3"
    qtbot.keyClick(bar.field, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert view.find_state() == (2, 3) and bar.count.text() == "3 of 3"
    bar.previous.click()
    assert bar.count.text() == "2 of 3"
    qtbot.keyClicks(bar.field, "s")  # "LLAMAs": none
    qtbot.waitUntil(lambda: bar.count.text() == "no match", timeout=5000)
    assert not bar.next.isEnabled() and not bar.previous.isEnabled()
    qtbot.keyClick(bar.field, Qt.Key.Key_Escape)
    assert not bar.isVisible() and view.find_state() == (-1, 0)


def test_show_prompt_on_a_reply_shows_what_was_sent_for_it(qtbot, screens, home, make_model):
    Library().import_file(make_model("tiny", name="vicuna-7b-v1.5"))
    screen = screens()
    session, inspector = screen.session, screen.inspector
    set_knobs(screen, threads=1, max_tokens=4)
    with qtbot.waitSignal(session.worker.promptReady, timeout=WAIT) as sent:
        screen.send("hello")
    qtbot.waitUntil(lambda: not screen.is_busy(), timeout=WAIT)
    reply = session.store.messages(session.conv.id)[-1]
    screen.composer.set_text("a draft")  # the inspector previews the next prompt…
    qtbot.waitUntil(lambda: inspector.caption.text() == "Next prompt (with your draft)",
                    timeout=WAIT)
    screen.messages.trigger(reply.id, "inspect")  # …until a reply's "Prompt" button
    assert screen.side.isVisible() and screen.side.currentWidget() is inspector
    assert inspector.caption.text() == "Prompt sent for this reply"
    assert inspector.prompt.toPlainText() == sent.args[1].text
    assert sent.args[1].text.endswith("USER: hello ASSISTANT:")

    # A reply written before the window opened: its conversation rendered again, and said so.
    again = screens()
    again.messages.trigger(reply.id, "inspect")
    qtbot.waitUntil(lambda: again.inspector.caption.text().startswith(
        "This reply's conversation, rendered again now"), timeout=WAIT)
    assert again.inspector.prompt.toPlainText() == sent.args[1].text
