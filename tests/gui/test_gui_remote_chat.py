"""Registered servers in the chat window (issue 16 §2), against real servers the test starts on
127.0.0.1: `corral serve` (the shipped command) and llama-cpp-python's `python -m
llama_cpp.server`, each with an API key, on generated models.

The model picker lists each server's models under its name beside the local ones; one chosen
with the keyboard streams its reply with the same stats line, Stop, Regenerate and Edit. A server
killed mid-reply, one that is down and one that refuses the key each give one clear message in
the reply's footer, the partial reply is kept, and the window goes on (a local model answers
next). Offline mode contacts no server: the picker says so. A server added on Settings' Servers
page (address and key typed there) is listed in the picker and answers in the chat, its key kept
in the keyring and in no file of the Corral home. pytest-qt, offscreen.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox

from app.core.chats import ChatStore
from app.core.library import Library
from app.core.remote import ServerRegistry
from app.core.settings import Settings, save_settings
from app.gui.chat.picker import NOTE
from app.testing.chat_screens import chat_screens, set_knobs
from app.testing.keyrings import MemoryKeyring, keyring_as
from app.testing.servers import corral_serve, free_port, llama_cpp_server

pytestmark = pytest.mark.timeout(300)
WAIT = 60_000


@pytest.fixture(autouse=True)
def keyring():
    with keyring_as(MemoryKeyring()) as ring:
        yield ring


@contextmanager
def serving(kind: str, home, make_model, model_kind: str = "tiny", procs: list | None = None):
    """(URL, the model's id there) of a server of `kind` with the key "the-key"."""
    if kind == "corral":
        path = make_model(model_kind, folder=home / "models", name=f"served-{model_kind}")
        with corral_serve(home, api_key="the-key", procs=procs) as url:
            yield url, path.stem
    else:
        with llama_cpp_server(make_model(model_kind), alias="served", api_key="the-key",
                              n_ctx=2048, procs=procs) as url:
            yield url, "served"


@pytest.fixture
def screens(qtbot):
    with chat_screens(qtbot) as make:
        yield make


def pick(screen, qtbot, query: str, model_id: str) -> None:
    """Ctrl+K's picker: type `query`, arrow to `model_id`, Enter."""
    screen.choose_model()
    picker = screen.toolbar.picker
    qtbot.waitUntil(lambda: picker.isVisible() and picker.search.hasFocus(), timeout=5000)
    qtbot.keyClicks(picker.search, query)
    # A server's models may still be being listed (opening the picker asks when stale).
    qtbot.waitUntil(lambda: model_id in [e.id for e in picker.shown_entries()], timeout=WAIT)
    ids = [e.id for e in picker.shown_entries()]
    assert model_id in ids, ids
    for _ in range(ids.index(model_id)):
        qtbot.keyClick(picker.search, Qt.Key.Key_Down)
    assert picker.current_entry().id == model_id
    qtbot.keyClick(picker.search, Qt.Key.Key_Return)
    assert not picker.isVisible()
    assert screen.session.conv.model_id == model_id


def idle(screen) -> bool:
    return not screen.is_busy()


@pytest.mark.parametrize("kind", ["corral", "llama_cpp"])
def test_a_server_model_chosen_in_the_picker_streams_stops_regenerates_and_edits(
        kind, qtbot, screens, home, make_model):
    local = Library().import_file(make_model("tiny", name="vicuna-7b-v1.5"))
    with serving(kind, home, make_model) as (url, served):
        ServerRegistry().add(url, key="the-key", name="box")
        screen = screens()
        session = screen.session
        remote = f"box/{served}"
        qtbot.waitUntil(lambda: remote in [e.id for e in session.models.remote], timeout=WAIT)
        # Listed under the server's name, beside the local models.
        screen.choose_model()
        picker = screen.toolbar.picker
        qtbot.waitUntil(picker.isVisible, timeout=5000)
        rows = [(r.kind, r.group, r.text) for r in picker.source.rows]
        assert rows[0] == ("header", "", "On this computer") and ("model", "", local.id) in rows
        box = rows.index(("header", "box", "box"))
        assert ("model", "box", served) in rows[box + 1:]
        assert all(group == "" for _, group, _ in rows[:box])
        qtbot.keyClick(picker.search, Qt.Key.Key_Escape)
        pick(screen, qtbot, "box", remote)
        entry = session.model()
        assert (entry.id, entry.group, entry.remote_id) == (remote, "box", served)
        assert screen.toolbar.model.full == f"{served}  ({' · '.join(filter(None, (entry.family, 'box')))})"
        assert not screen.toolbar.template.isEnabled()  # the server applies its own

        # Send; stop at the first pieces: the partial reply is kept, and why it stopped.
        set_knobs(screen, max_tokens=2000, seed=3)
        streamed: list[str] = []

        def stop_once(_rid: int, text: str) -> None:
            streamed.append(text)
            if len(streamed) == 1:
                screen.stop()

        screen.session.worker.tokens.connect(stop_once)
        assert screen.send("hello")
        qtbot.waitUntil(lambda: bool(streamed) and idle(screen), timeout=WAIT)
        screen.session.worker.tokens.disconnect(stop_once)
        store = session.store
        conv = session.conv
        user, reply = store.messages(conv.id)
        assert (user.content, reply.state) == ("hello", "interrupted")
        assert reply.content and reply.content == screen.messages.row(reply.id).text
        assert reply.stats["model"] == remote and reply.stats["template"] == "server"
        assert reply.stats["stopped_by"] == "user"
        assert "stop: stopped by you" in screen.messages.footer_text(reply.id)

        # Regenerate with a short limit: the same stats line as a local reply.
        set_knobs(screen, max_tokens=8)
        screen.regenerate_action.trigger()
        qtbot.waitUntil(lambda: not idle(screen), timeout=WAIT)
        qtbot.waitUntil(lambda: idle(screen), timeout=WAIT)
        user, reply = store.messages(conv.id)
        assert (reply.state, reply.stats["stopped_by"], reply.stats["generated_tokens"]) == (
            "complete", "token_limit", 8)
        footer = screen.messages.footer_text(reply.id)
        assert footer.startswith("8 tokens · ") and "tok/s" in footer
        assert "first token" in footer and footer.endswith("stop: token limit")

        # Edit the question and resend it: the old reply goes, a new one comes from the server.
        screen.messages.trigger(user.id, "edit")
        assert screen.composer.editing == user.id
        screen.composer.set_text("hello again")
        qtbot.keyClick(screen.composer.edit, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: not idle(screen), timeout=WAIT)
        qtbot.waitUntil(lambda: idle(screen), timeout=WAIT)
        messages = store.messages(conv.id)
        assert [(m.role, m.state) for m in messages] == [("user", "complete"),
                                                         ("assistant", "complete")]
        assert messages[0].content == "hello again" and messages[0].id == user.id
        assert messages[1].content and messages[1].stats["model"] == remote
        assert screen.messages.message_ids() == [m.id for m in messages]
        assert not screen.error_banner.isVisible()


def test_a_server_added_on_the_settings_servers_page_answers_in_the_chat(
        qtbot, open_window, home, tmp_path, make_model, keyring):
    """Settings → Servers: address and key typed, Add (asking it for its models), Save; then
    the chat's picker lists SERVER/MODEL, and it streams the reply that is saved."""
    Library().import_file(make_model("tiny", name="vicuna-7b-v1.5"))  # the window opens on a chat
    # The server has a Corral home of its own (another machine): its key file is not ours.
    with serving("corral", tmp_path / "server", make_model) as (url, served):
        window = open_window()
        qtbot.waitUntil(lambda: window.is_ready and window.chat_screen is not None, timeout=WAIT)
        window.show_screen("chat")
        screen = window.chat_screen
        assert not window.showing_welcome()

        window.open_settings()
        dialog = window.settings_dialog
        page = dialog.show_page("servers")
        assert page.isVisible() and page.check.isChecked()  # "Ask it for its models": on
        qtbot.keyClicks(page.url, url)
        qtbot.keyClicks(page.key, "the-key")
        qtbot.keyClicks(page.name, "box")
        qtbot.mouseClick(page.add_button, Qt.MouseButton.LeftButton)
        assert not page.add_button.isEnabled()  # asking the server, off the GUI thread
        qtbot.waitUntil(page.add_button.isEnabled, timeout=WAIT)
        assert page.message() == "Added box: 1 model."
        assert page.server_names() == ["box"] and page.list.topLevelItem(0).text(2) == "OS keyring"
        assert [page.models.item(i).text() for i in range(page.models.count())] == [f"box/{served}"]
        assert (page.url.text(), page.key.text()) == ("", "")
        save = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Save)
        qtbot.mouseClick(save, Qt.MouseButton.LeftButton)
        assert not dialog.isVisible() and dialog.result() == QDialog.DialogCode.Accepted

        session = screen.session
        remote = f"box/{served}"
        pick(screen, qtbot, "box", remote)
        assert (session.model().server.url, session.model().remote_id) == (url, served)
        set_knobs(screen, max_tokens=8)
        streamed: list[str] = []
        session.worker.tokens.connect(lambda _rid, text: streamed.append(text))
        screen.composer.set_text("hello")
        qtbot.keyClick(screen.composer.edit, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: not idle(screen), timeout=WAIT)
        qtbot.waitUntil(lambda: idle(screen), timeout=WAIT)
        store, conv = session.store, session.conv
        user, reply = store.messages(conv.id)
        assert (user.role, user.content, reply.role, reply.state) == (
            "user", "hello", "assistant", "complete")
        assert reply.content and "".join(streamed) == reply.content
        assert screen.messages.row(reply.id).text == reply.content
        assert (reply.stats["model"], reply.stats["template"], reply.stats["stopped_by"],
                reply.stats["generated_tokens"]) == (remote, "server", "token_limit", 8)
        footer = screen.messages.footer_text(reply.id)
        assert footer.startswith("8 tokens · ") and "tok/s" in footer
        assert "first token" in footer and footer.endswith("stop: token limit")
        assert not screen.error_banner.isVisible()
        window.close()  # everything it keeps is written

    # The key: in the keyring, and in no file of the Corral home (the registry's included).
    registry = ServerRegistry()
    assert keyring.data == {("corral", "server:box"): "the-key"}
    box = registry.get("box")
    assert (box.url, box.key_store, registry.key(box)) == (url, "keyring", "the-key")
    files = [f for f in home.rglob("*") if f.is_file()]
    assert registry.path in files
    assert [f for f in files if b"the-key" in f.read_bytes()] == []


@pytest.mark.parametrize("kind", ["corral", "llama_cpp"])
def test_a_server_killed_mid_reply_keeps_the_partial_reply_says_why_once_and_the_window_goes_on(
        kind, qtbot, screens, home, make_model):
    local = Library().import_file(make_model("tiny", name="vicuna-7b-v1.5"))
    procs: list = []
    with serving(kind, home, make_model, "small", procs) as (url, served):
        ServerRegistry().add(url, key="the-key", name="box")
        screen = screens()
        remote = f"box/{served}"
        qtbot.waitUntil(lambda: remote in [e.id for e in screen.session.models.remote],
                        timeout=WAIT)
        pick(screen, qtbot, served, remote)
        set_knobs(screen, max_tokens=1500, temperature=1.0)
        streamed: list[str] = []

        def kill_once(_rid: int, text: str) -> None:
            streamed.append(text)
            if len(streamed) == 1:
                procs[0].kill()

        screen.session.worker.tokens.connect(kill_once)
        assert screen.send("tell me a long story")
        qtbot.waitUntil(lambda: bool(streamed) and idle(screen), timeout=WAIT)
        screen.session.worker.tokens.disconnect(kill_once)
        assert procs[0].wait(10) is not None
    store, conv = screen.session.store, screen.session.conv
    user, reply = store.messages(conv.id)
    assert user.content == "tell me a long story"
    assert reply.state == "error" and reply.content  # the partial reply is kept
    assert reply.content == "".join(streamed) == screen.messages.row(reply.id).text
    error, address = reply.stats["error"], ServerRegistry().get("box").url
    assert error.startswith(f"the connection to box ({address}) dropped mid-reply: "), error
    footer = screen.messages.footer_text(reply.id)
    assert "stop: error" in footer and f"error: {error}" in footer
    assert not screen.error_banner.isVisible()  # said once: in the reply's footer

    # The window goes on: the local model answers in the same conversation.
    screen.session.choose_model(local.id)
    set_knobs(screen, max_tokens=8)
    assert screen.send("and now?")
    qtbot.waitUntil(lambda: not idle(screen), timeout=WAIT)
    qtbot.waitUntil(lambda: idle(screen), timeout=WAIT)
    last = store.messages(conv.id)[-1]
    assert (last.state, last.stats["model"], last.stats["generated_tokens"]) == (
        "complete", local.id, 8)
    assert screen.messages.row(last.id).text == last.content


def test_a_server_down_or_refusing_the_key_says_so_in_the_picker_and_the_reply(
        qtbot, screens, home, make_model):
    local = Library().import_file(make_model("tiny", name="vicuna-7b-v1.5"))
    down = f"http://127.0.0.1:{free_port()}/v1"
    with serving("llama_cpp", home, make_model) as (url, served):
        registry = ServerRegistry()
        registry.add(url, key="wrong-key", name="refusing")
        registry.add(down, name="down")
        store = ChatStore()
        refused = store.create_conversation(title="refused", model_id=f"refusing/{served}")
        gone = store.create_conversation(title="gone", model_id="down/m")
        store.close()
        screen = screens()
        session = screen.session
        qtbot.waitUntil(lambda: {s.server.name: s.state for s in session.models.servers}
                        == {"refusing": "failed", "down": "failed"}, timeout=WAIT)
        notes = {s.server.name: s.note for s in session.models.servers}
        assert notes["refusing"].startswith("refusing: 401"), notes
        assert notes["down"].startswith(f"cannot reach down ({down})"), notes
        screen.choose_model()  # each server keeps its line, with why it lists nothing
        picker = screen.toolbar.picker
        qtbot.waitUntil(picker.isVisible, timeout=5000)
        shown = [(r.group, r.text) for r in picker.source.rows if r.kind == NOTE]
        assert ("refusing", notes["refusing"]) in shown and ("down", notes["down"]) in shown
        picker.hide()

        for conv, start in ((gone, f"cannot reach down ({down})"), (refused, "refusing: 401")):
            screen.open_conversation(conv.id)
            assert session.model().id == conv.model_id  # named even though nothing is listed
            assert screen.send("hello")
            qtbot.waitUntil(lambda: idle(screen) and len(store_messages(session, conv.id)) == 2,
                            timeout=WAIT)
            user, reply = store_messages(session, conv.id)
            assert (user.content, reply.state, reply.content) == ("hello", "error", "")
            assert reply.stats["error"].startswith(start), reply.stats
            assert f"error: {reply.stats['error']}" in screen.messages.footer_text(reply.id)
            assert not screen.error_banner.isVisible()
    # Usable: a new chat on the local model answers.
    screen.new_chat(local.id)
    set_knobs(screen, max_tokens=4)
    assert screen.send("still there?")
    qtbot.waitUntil(lambda: not idle(screen), timeout=WAIT)
    qtbot.waitUntil(lambda: idle(screen), timeout=WAIT)
    assert store_messages(session, session.conv.id)[-1].state == "complete"


def store_messages(session, cid: int) -> list:
    return session.store.messages(cid)


def test_offline_mode_lists_no_server_and_says_so(qtbot, screens, home, loopback_listener):
    port, accepted = loopback_listener
    save_settings(Settings(offline=True))
    ServerRegistry().add(f"http://127.0.0.1:{port}/v1", name="box")
    screen = screens()
    session = screen.session
    assert [(s.server.name, s.state, s.note) for s in session.models.servers] == [
        ("box", "offline", "offline mode is on: not contacted")]
    screen.choose_model()
    picker = screen.toolbar.picker
    qtbot.waitUntil(picker.isVisible, timeout=5000)
    assert [(r.kind, r.group, r.text) for r in picker.source.rows if r.group == "box"] == [
        ("header", "box", "box"), ("note", "box", "offline mode is on: not contacted")]
    picker.hide()
    screen.toolbar.open_picker()  # opening it again asks nothing either
    picker.hide()
    assert session.models.remote == [] and accepted.empty()
