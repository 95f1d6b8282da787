"""A chat exported as JSON imports back (issue 17 §5): app.core.chat_transfer, with a real
ChatStore; and `corral chats import/export/list`, the shipped command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app.core.chat_transfer import MAX_BYTES, ChatImportError, import_json
from app.core.chats import ChatStore

CODE = "```python\ndef greet(name: str) -> str:\n    return f\"héllo {name} 🐄\"\n```"
MESSAGES = [
    ("system", "Tu es un assistant. 日本語で答えて。", "complete", {}),
    ("user", f"Explain this — naïve café, 🐄🐑, Ω≈ç√:\n\n{CODE}\n\nand `inline` code.", "complete", {}),
    ("assistant", f"Voilà:\n\n{CODE}\n\n| a | b |\n|---|---|\n| ✓ | ✗ |", "complete",
     {"generated_tokens": 42, "decode_tps": 27.5, "ttft_s": 0.21, "stop_reason": "eos"}),
    ("user", "Again, but shorter 😅", "complete", {}),
    ("assistant", "Sure: 短い", "interrupted", {"generated_tokens": 2, "stop_reason": "cancelled"}),
]


def make_chat(store: ChatStore) -> int:
    conv = store.create_conversation(
        title="Code & Unicode — ünïcødé 🐄", model_id="tiny.F32", template_id="chatml",
        system_prompt="Be brief ✍️", params={"temperature": 0.3, "top_k": 20, "seed": None},
        options={"stop": ["</s>", "###"], "draft": "half-typed ✎"})
    for role, content, state, stats in MESSAGES:
        store.add_message(conv.id, role, content, state=state, stats=stats)
    return conv.id


def comparable(export: dict) -> dict:
    """An export without what an import renews (ids and dates)."""
    data = {k: v for k, v in export.items() if k not in ("id", "created", "updated")}
    data["messages"] = [{k: v for k, v in m.items() if k not in ("id", "created")}
                        for m in export["messages"]]
    return data


def test_an_export_imports_back_whole(store, tmp_path):
    cid = make_chat(store)
    path = store.export_to_file(cid, tmp_path / "chat.json")
    conv = import_json(store, path)
    assert conv.id != cid and store.count() == 2
    assert comparable(store.export_json(conv.id)) == comparable(store.export_json(cid))
    assert [m.content for m in store.messages(conv.id)] == [m[1] for m in MESSAGES]
    # Importing the same file again gives a third chat; nothing existing is touched.
    again = import_json(store, path)
    assert again.id not in (cid, conv.id) and store.count() == 3


def test_a_reply_still_streaming_in_the_file_comes_back_interrupted(store, tmp_path):
    cid = store.create_conversation(title="t").id
    store.add_message(cid, "user", "hi")
    store.add_message(cid, "assistant", "hal", state="streaming")
    path = store.export_to_file(cid, tmp_path / "c.json")
    conv = import_json(store, path)
    assert [m.state for m in store.messages(conv.id)] == ["complete", "interrupted"]


def _export(**changes) -> dict:
    data = {"format": "corral-conversation", "version": 1, "title": "t", "mode": "chat",
            "params": {}, "options": {}, "messages": [{"role": "user", "content": "hi",
                                                       "state": "complete", "stats": {}}]}
    data.update(changes)
    return data


DAMAGED = [
    ("random bytes", b"\x89PNG\r\n\x1a\n\xff\xfe\x00garbage", "is not UTF-8 text"),
    ("cut short", json.dumps(_export())[:-20].encode(), "is not valid JSON"),
    ("empty", b"", "is empty"),
    ("another JSON", b'{"models": []}', "is not a Corral chat export"),
    ("a list", b"[1, 2]", "is not a Corral chat export"),
    ("newer", json.dumps(_export(version=7)).encode(), "written by a newer Corral"),
    ("bad role", json.dumps(_export(messages=[{"role": "bot", "content": "x"}])).encode(),
     "message 1: role must be one of system, user, assistant, not 'bot'"),
    ("no content", json.dumps(_export(messages=[{"role": "user"}])).encode(),
     "message 1: content must be text"),
    ("bad state", json.dumps(_export(messages=[{"role": "user", "content": "x",
                                                "state": "done"}])).encode(), "state must be"),
    ("messages not a list", json.dumps(_export(messages={"a": 1})).encode(),
     "messages must be a list"),
    ("NaN temperature", json.dumps(_export(params={"temperature": float("nan")})).encode(),
     "params: temperature must be a finite number"),
    ("huge top_k", json.dumps(_export(params={"top_k": 2**40})).encode(), "params: top_k"),
    ("bad mode", json.dumps(_export(mode="poem")).encode(), "mode must be one of chat, completion"),
    ("lone surrogate", json.dumps(_export(title="a\ud800b")).encode(), "title holds a lone surrogate"),
    ("deep", (b'{"format": "corral-conversation", "version": 1, "params": '
              + b'{"a": ' * 100 + b"1" + b"}" * 100 + b"}"), "nested too deeply"),
    ("options.stop not strings", json.dumps(_export(options={"stop": [1]})).encode(),
     "options: stop must be a list of strings"),
]


@pytest.mark.parametrize("name, content, reason", DAMAGED, ids=[d[0] for d in DAMAGED])
def test_a_damaged_file_is_refused_whole_with_its_name(store, tmp_path, name, content, reason):
    make_chat(store)
    path = tmp_path / "chat.json"
    path.write_bytes(content)
    with pytest.raises(ChatImportError) as caught:
        import_json(store, path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and reason in message, message
    assert message.endswith("nothing was imported") and "\n" not in message
    assert store.count() == 1  # nothing half-imported
    assert path.read_bytes() == content  # the file is left as it was


def test_too_large_missing_and_special_files_are_refused(store, tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: the size alone refuses it, nothing is read
    with pytest.raises(ChatImportError, match="is too large"):
        import_json(store, big)
    with pytest.raises(ChatImportError, match="there is no such file"):
        import_json(store, tmp_path / "gone.json")
    with pytest.raises(ChatImportError, match="is a directory"):
        import_json(store, tmp_path)
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.json"
        os.mkfifo(fifo)
        with pytest.raises(ChatImportError, match="FIFO"):
            import_json(store, fifo)  # never hangs waiting for a writer
    assert store.count() == 0


# --------------------------------------------------------------------------- the command

def corral(home, *args):
    env = dict(os.environ, CORRAL_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "app", *args], env=env, text=True,
                          capture_output=True, timeout=120)


def test_corral_chats_round_trip_through_the_command(tmp_path, monkeypatch):
    """Export in one Corral home, import in another, with the shipped `corral chats`."""
    from app.core.paths import get_paths

    first, second = tmp_path / "first", tmp_path / "second"
    r = corral(first, "chats", "list")
    assert r.returncode == 0 and r.stdout.strip() == "No conversations yet.", r.stderr
    monkeypatch.setenv("CORRAL_HOME", str(first))  # the database the command uses there
    store = ChatStore(get_paths().chats_db)
    cid = make_chat(store)
    original = store.export_json(cid)
    store.close()

    r = corral(first, "chats", "list")
    assert r.returncode == 0 and r.stdout.startswith(f"{cid}\t") and "ünïcødé 🐄" in r.stdout
    out = tmp_path / "exported chat.json"
    r = corral(first, "chats", "export", str(cid), str(out))
    assert r.returncode == 0 and r.stdout.strip() == f"Exported conversation {cid} to {out}"
    r = corral(second, "chats", "import", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == 'Imported "Code & Unicode — ünïcødé 🐄" as conversation 1 (5 messages)'
    r = corral(second, "chats", "export", "1", str(tmp_path / "back.json"))
    assert r.returncode == 0, r.stderr
    back = json.loads((tmp_path / "back.json").read_text(encoding="utf-8"))
    assert comparable(back) == comparable(original)

    md = tmp_path / "chat.md"
    r = corral(second, "chats", "export", "1", str(md))
    assert r.returncode == 0 and CODE in md.read_text(encoding="utf-8")
    r = corral(second, "chats", "export", "9", str(md))
    assert r.returncode == 1 and r.stderr == "corral: there is no conversation 9; `corral chats list` shows them\n"

    damaged = tmp_path / "damaged.json"
    damaged.write_bytes(out.read_bytes()[:200])
    r = corral(second, "chats", "import", str(damaged))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith(f"corral: {damaged}: is not valid JSON (line ")
    assert r.stderr.endswith("; nothing was imported\n") and r.stderr.count("\n") == 1
    r = corral(second, "chats", "list")
    assert r.stdout.count("\n") == 1  # still the one imported chat
