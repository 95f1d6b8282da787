"""Conversations in SQLite: CRUD, search, replies saved as they grow, crash recovery, export."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.core.chats import (DEFAULT_TITLE, SCHEMA_VERSION, ChatStore, ChatStoreError, set_aside,
                            title_from)
from app.core.turns.ending import describe_stats

ROOT = Path(__file__).resolve().parents[2]


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
    before = path.read_bytes()
    with pytest.raises(ChatStoreError) as err:
        ChatStore(path)
    assert str(err.value) == (f"the chats database {path} was written by a newer Corral (schema "
                              f"99, this one knows {SCHEMA_VERSION}); update Corral to open it")
    assert err.value.kind == "newer" and err.value.path == path
    assert path.read_bytes() == before  # left exactly as it was


def _damaged(path: Path) -> ChatStoreError:
    with pytest.raises(ChatStoreError) as err:
        ChatStore(path)
    assert err.value.kind == "damaged" and err.value.path == path
    assert str(err.value).startswith(f"the chats database {path} is damaged (")
    assert str(err.value).endswith("); set it aside and start a new one (it is kept under a "
                                   "dated name)")
    return err.value


def test_a_damaged_database_is_named_and_set_aside_with_its_wal_under_a_dated_name(tmp_path):
    path = tmp_path / "chats.sqlite3"
    garbage = b"not a database " * 500
    path.write_bytes(garbage)
    (tmp_path / "chats.sqlite3-wal").write_bytes(b"its wal")
    assert "(file is not a database)" in str(_damaged(path))
    assert path.read_bytes() == garbage  # opening never changes a damaged file

    aside = set_aside(path)
    assert re.fullmatch(r"chats\.sqlite3\.damaged-\d{8}-\d{6}", aside.name)
    assert aside.read_bytes() == garbage
    assert (tmp_path / (aside.name + "-wal")).read_bytes() == b"its wal"
    assert not path.exists() and not (tmp_path / "chats.sqlite3-wal").exists()
    fresh = ChatStore(path)
    assert fresh.count() == 0 and fresh.schema_version() == SCHEMA_VERSION
    fresh.close()
    # A second damaged file the same second gets its own name; nothing is replaced.
    path.write_bytes(b"again")
    second = set_aside(path)
    assert second != aside and second.read_bytes() == b"again" and aside.read_bytes() == garbage


def test_a_database_missing_a_table_is_damaged(tmp_path):
    path = tmp_path / "chats.sqlite3"
    ChatStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE message")
    assert "(its table message is missing)" in str(_damaged(path))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_fifo_in_place_of_the_database_is_damaged_not_a_hang(tmp_path):
    path = tmp_path / "chats.sqlite3"
    os.mkfifo(path)
    assert "(it is a named pipe (FIFO), not a file)" in str(_damaged(path))
    assert set_aside(path).is_fifo() and not path.exists()


def test_a_folder_that_cannot_hold_the_database_is_unavailable(tmp_path):
    (tmp_path / "data").write_text("a file where the data folder should be")
    path = tmp_path / "data" / "chats.sqlite3"
    with pytest.raises(ChatStoreError) as err:
        ChatStore(path)
    assert err.value.kind == "unavailable"
    assert str(err.value) == (f"cannot open the chats database {path} (file exists); make "
                              f"sure Corral can write to {path.parent}, then try again")


def test_one_bad_field_does_not_hide_any_conversation(store):
    ids = [store.create_conversation(title=t, params={"top_k": 5}).id for t in "abc"]
    store.add_message(ids[0], "assistant", "hi", stats={"generated_tokens": 1})
    db = store._conn()
    db.execute("UPDATE conversation SET params = 'not json{' WHERE id = ?", (ids[1],))
    db.execute("UPDATE conversation SET options = '[1, 2]' WHERE id = ?", (ids[2],))
    db.execute("UPDATE message SET stats = '\"text\"'")
    assert sorted(c.title for c in store.conversations()) == ["a", "b", "c"]
    assert store.conversation(ids[1]).params == {} and store.conversation(ids[2]).options == {}
    assert store.conversation(ids[0]).params == {"top_k": 5}
    assert store.messages(ids[0])[0].stats == {}
    assert [c.title for c in store.search("b")] == ["b"]


def test_the_database_is_owner_only_and_an_older_one_is_tightened(tmp_path):
    path = tmp_path / "chats.sqlite3"
    store = ChatStore(path)
    store.create_conversation()
    for name in ("chats.sqlite3", "chats.sqlite3-wal", "chats.sqlite3-shm"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name
    store.close()
    os.chmod(path, 0o644)  # as Corral made it before
    ChatStore(path).close()
    assert path.stat().st_mode & 0o777 == 0o600


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
        "3 tokens · 12.3 tok/s · first token 500 ms · stop: token limit"
    # Why a reply stopped, as the turn pipeline saves it (stopped_by), in words.
    said = {"user": "stop: stopped by you", "context_full": "stop: context full",
            "end_of_text": "stop: end of text", "token_limit": "stop: token limit"}
    for reason, words in said.items():
        assert describe_stats({"generated_tokens": 2, "stopped_by": reason,
                               "stop_reason": "length"}) == f"2 tokens · {words}"
    assert describe_stats({"generated_tokens": 1, "stopped_by": "stop_string",
                           "stop_string": "USER:"}) == "1 tokens · stop: stop string 'USER:'"
    assert describe_stats({"generated_tokens": 0, "stopped_by": "error", "error": "boom"},
                          "error") == "0 tokens · stop: error · error: boom"
    assert describe_stats({"generated_tokens": 5, "stop_reason": "eos"}, "interrupted") == \
        "5 tokens · interrupted (Corral was closed mid-reply)"
