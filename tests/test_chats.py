"""Conversations in SQLite: CRUD, search, replies saved as they grow, crash recovery, export."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.core.chats import (DEFAULT_TITLE, SCHEMA_VERSION, ChatStore, ChatStoreError,
                            describe_stats, title_from)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path):
    s = ChatStore(tmp_path / "chats.sqlite3")
    yield s
    s.close()


def test_new_database_has_the_schema_in_wal_mode(store, tmp_path):
    assert store.schema_version() == SCHEMA_VERSION
    mode = store._conn().execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert store._conn().execute("PRAGMA foreign_keys").fetchone()[0] == 1
    store.close()
    again = ChatStore(tmp_path / "chats.sqlite3")  # reopening migrates nothing twice
    assert again.schema_version() == SCHEMA_VERSION
    again.close()


def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "chats.sqlite3"
    ChatStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(ChatStoreError, match="newer Corral"):
        ChatStore(path)


def test_conversations_are_created_listed_renamed_and_deleted(store):
    a = store.create_conversation(model_id="vicuna", params={"temperature": 0.5})
    b = store.create_conversation(mode="completion")
    assert a.title == DEFAULT_TITLE and a.params == {"temperature": 0.5}
    assert b.mode == "completion"
    assert [c.id for c in store.conversations()] == [b.id, a.id]
    store.add_message(a.id, "user", "Tell me about llamas, the animals of the Andes, please")
    # A message moves its conversation to the top and titles an untitled one.
    listed = store.conversations()
    assert listed[0].id == a.id
    assert listed[0].title.startswith("Tell me about llamas") and len(listed[0].title) <= 49
    assert store.rename(a.id, "  Llamas   facts ").title == "Llamas facts"
    with pytest.raises(ValueError):
        store.rename(a.id, "   ")
    store.delete_conversation(a.id)
    assert [c.id for c in store.conversations()] == [b.id]
    assert store.messages(a.id) == []  # cascaded
    with pytest.raises(ChatStoreError):
        store.conversation(a.id)


def test_options_merge_and_fields_are_checked(store):
    c = store.create_conversation()
    store.set_options(c.id, stop=["\nUser:"], draft="hi")
    store.set_options(c.id, draft=None)
    assert store.conversation(c.id).options == {"stop": ["\nUser:"]}
    with pytest.raises(ValueError):
        store.update_conversation(c.id, colour="red")
    with pytest.raises(ValueError):
        store.update_conversation(c.id, mode="poetry")


def test_search_finds_titles_and_message_text_case_insensitively(store):
    a = store.create_conversation(title="Cooking")
    b = store.create_conversation(title="Travel")
    store.add_message(b.id, "user", "Where is the best café for 100% arabica?")
    assert [c.id for c in store.search("cook")] == [a.id]
    assert [c.id for c in store.search("BEST CAF")] == [b.id]
    assert [c.id for c in store.search("100%")] == [b.id]  # LIKE wildcards are escaped
    assert store.search("_") == []
    assert len(store.search("  ")) == 2


def test_edit_and_regenerate_delete_from_a_message_on(store):
    c = store.create_conversation()
    u1 = store.add_message(c.id, "user", "one")
    store.add_message(c.id, "assistant", "uno")
    u2 = store.add_message(c.id, "user", "two")
    store.add_message(c.id, "assistant", "dos")
    assert store.delete_messages_from(c.id, u2.id) == 2
    assert [m.content for m in store.messages(c.id)] == ["one", "uno"]
    store.update_message(u1.id, content="one!")
    assert store.messages(c.id)[0].content == "one!"


def test_a_reply_is_saved_as_it_grows_and_finished_with_stats(store):
    c = store.create_conversation()
    store.add_message(c.id, "user", "hello")
    writer = store.begin_reply(c.id, stats={"model": "tiny"}, interval_s=0.0)
    writer.append("Hel")
    assert store.message(writer.message_id).content == "Hel"
    assert store.message(writer.message_id).state == "streaming"
    writer.append("lo")
    writer.finish("complete", {"generated_tokens": 2, "decode_tps": 30.0, "stop_reason": "eos"})
    m = store.message(writer.message_id)
    assert (m.content, m.state) == ("Hello", "complete")
    assert m.stats == {"model": "tiny", "generated_tokens": 2, "decode_tps": 30.0,
                       "stop_reason": "eos"}


def test_reply_writes_are_throttled(store):
    c = store.create_conversation()
    writer = store.begin_reply(c.id, interval_s=3600, max_pending=100)
    for _ in range(50):
        writer.append("ab")  # 100 characters: one write when the pending text reaches 100
    assert writer.writes == 1
    writer.append("c")
    assert writer.writes == 1 and store.message(writer.message_id).content == "ab" * 50
    writer.finish("interrupted")
    assert store.message(writer.message_id).content == "ab" * 50 + "c"


def test_the_store_is_usable_from_a_worker_thread_while_the_gui_thread_reads(store):
    c = store.create_conversation()
    writer = store.begin_reply(c.id, interval_s=0.0)
    errors: list[BaseException] = []

    def work():
        try:
            for i in range(200):
                writer.append(f"{i} ")
            writer.finish("complete", {"generated_tokens": 200})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=work)
    t.start()
    while t.is_alive():
        store.messages(c.id)  # reads on this thread meanwhile
    t.join()
    assert not errors
    assert store.message(writer.message_id).content.endswith("199 ")


def test_opening_marks_replies_left_streaming_as_interrupted(tmp_path):
    path = tmp_path / "chats.sqlite3"
    s = ChatStore(path)
    c = s.create_conversation()
    writer = s.begin_reply(c.id, interval_s=0.0)
    writer.append("partial")
    s.close()  # never finished: as if the app died
    again = ChatStore(path)
    assert again.recovered == 1
    m = again.messages(c.id)[0]
    assert (m.content, m.state) == ("partial", "interrupted")
    again.close()


CRASH_SCRIPT = r"""
import sys
from app.core.chats import ChatStore
store = ChatStore(sys.argv[1])
c = store.create_conversation(title="crash")
store.add_message(c.id, "user", "write forever")
writer = store.begin_reply(c.id, interval_s=0.05)
told = False
i = 0
while True:  # a reply that never ends, until SIGKILL
    writer.append(f"token{i} ")
    i += 1
    if writer.writes and not told:
        print("saved", flush=True)
        told = True
"""


def test_a_reply_survives_the_process_being_killed_mid_reply(tmp_path):
    path = tmp_path / "chats.sqlite3"
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "saved"  # the first throttled write is in
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    store = ChatStore(path)
    conv = store.conversations()[0]
    user, reply = store.messages(conv.id)
    assert user.content == "write forever"
    assert reply.state == "interrupted"
    assert reply.content.startswith("token0 token1 ")
    store.close()


def test_export_markdown_and_json(store, tmp_path):
    c = store.create_conversation(model_id="vicuna-7b", template_id="vicuna-v1.1",
                                  system_prompt="Be brief.")
    store.add_message(c.id, "user", "Code?")
    w = store.begin_reply(c.id)
    w.append("```python\nprint(1)\n```")
    w.finish("complete", {"generated_tokens": 7, "decode_tps": 25.0, "ttft_s": 0.2,
                          "stop_reason": "eos"})
    md = store.export_markdown(c.id)
    assert md.startswith("# Code?\n")
    assert "Model: vicuna-7b" in md and "**System**" in md and "## You" in md
    assert "```python\nprint(1)\n```" in md and "7 tokens · 25.0 tok/s" in md
    out = store.export_to_file(c.id, tmp_path / "chat.json")
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["format"] == "corral-conversation" and data["title"] == "Code?"
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]
    assert data["messages"][1]["stats"]["stop_reason"] == "eos"
    assert store.export_to_file(c.id, tmp_path / "chat.md").read_text(encoding="utf-8") == md


def test_titles_and_stats_lines():
    assert title_from("\n  hello there \nmore") == "hello there"
    assert title_from("") == DEFAULT_TITLE
    long = title_from("word " * 30)
    assert long.endswith("…") and len(long) <= 49
    assert describe_stats({"generated_tokens": 3, "decode_tps": 12.345, "ttft_s": 0.5,
                           "stop_reason": "length"}) == \
        "3 tokens · 12.3 tok/s · first token 500 ms · stop: length"
