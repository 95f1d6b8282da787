"""Conversations and their messages, kept in one SQLite file (stdlib sqlite3, WAL).

- A conversation has a title, the model and template it talks to, a system prompt, a mode
  (``chat``: turns rendered by a template; ``completion``: Dalai's one editable text), its
  sampling parameters and a few options (stop-string and prompt overrides, the draft).
- A message has a role, its text, a state and its stats. A user message is saved when it is
  sent. A reply is saved *as it grows* through a `ReplyWriter` (state ``streaming``, its text
  written at most every quarter second), and finished as ``complete``, ``interrupted`` (stopped)
  or ``error``. Opening the store turns any reply still ``streaming`` into ``interrupted``: the
  app was killed mid-reply, and the partial reply is kept.

Threads: every thread gets its own connection (WAL lets a reader and a writer work at once,
``busy_timeout`` serializes two writers), so the GUI thread and the engine worker both use
one `ChatStore`. No Qt here.

Opening fails with one `ChatStoreError` whose `kind` says what the face may offer (see
app/core/chat_file.py: newer, damaged → `set_aside`, unavailable). A field that does not hold a
JSON object reads as empty rather than hiding its conversation.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.core.chat_file import ChatStoreError, damaged_error, prepare_file, set_aside, store_error
from app.core.chat_reply import ReplyWriter
from app.core.statefile import merged, write_text_atomic

__all__ = ["ChatStore", "ChatStoreError", "Conversation", "Message", "ReplyWriter", "set_aside",
           "store_error"]

MODES = ("chat", "completion")
ROLES = ("system", "user", "assistant")
STATES = ("complete", "streaming", "interrupted", "error")
DEFAULT_TITLE = "New chat"
TITLE_LENGTH = 48

# Each step brings the schema from version i to i + 1; never edit a released step, add one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE conversation (
        id            INTEGER PRIMARY KEY,
        title         TEXT NOT NULL,
        model_id      TEXT,
        model_path    TEXT,
        template_id   TEXT,
        system_prompt TEXT,
        mode          TEXT NOT NULL DEFAULT 'chat' CHECK (mode IN ('chat', 'completion')),
        params        TEXT NOT NULL DEFAULT '{}',
        options       TEXT NOT NULL DEFAULT '{}',
        created       REAL NOT NULL,
        updated       REAL NOT NULL
    );
    CREATE INDEX conversation_by_updated ON conversation (updated DESC);
    CREATE TABLE message (
        id              INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL REFERENCES conversation (id) ON DELETE CASCADE,
        role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content         TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'complete'
                        CHECK (state IN ('complete', 'streaming', 'interrupted', 'error')),
        stats           TEXT NOT NULL DEFAULT '{}',
        created         REAL NOT NULL
    );
    CREATE INDEX message_by_conversation ON message (conversation_id, id);
    CREATE INDEX message_by_state ON message (state) WHERE state = 'streaming';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _json_object(text: Any) -> dict[str, Any]:
    """A params/options/stats field as a dict: one that is not a JSON object (damaged by hand or
    by another program) reads as empty, so its conversation is still listed and opened."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Conversation:
    id: int
    title: str
    model_id: str | None = None
    model_path: str | None = None
    template_id: str | None = None  # None: the model's template (user setting or detection)
    system_prompt: str | None = None  # None: the template's default
    mode: str = "chat"
    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    updated: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "model_id": self.model_id,
                "model_path": self.model_path, "template_id": self.template_id,
                "system_prompt": self.system_prompt, "mode": self.mode,
                "params": dict(self.params), "options": dict(self.options),
                "created": self.created, "updated": self.updated}


@dataclass(frozen=True)
class Message:
    id: int
    conversation_id: int
    role: str
    content: str
    state: str = "complete"
    stats: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "content": self.content, "state": self.state,
                "stats": dict(self.stats), "created": self.created}


def _conversation(row: sqlite3.Row) -> Conversation:
    return Conversation(id=row["id"], title=row["title"], model_id=row["model_id"],
                        model_path=row["model_path"], template_id=row["template_id"],
                        system_prompt=row["system_prompt"], mode=row["mode"],
                        params=_json_object(row["params"]), options=_json_object(row["options"]),
                        created=row["created"], updated=row["updated"])


def _message(row: sqlite3.Row) -> Message:
    return Message(id=row["id"], conversation_id=row["conversation_id"], role=row["role"],
                   content=row["content"], state=row["state"], stats=_json_object(row["stats"]),
                   created=row["created"])


def title_from(text: str) -> str:
    """A conversation title from its first message: the first line, shortened at a word."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if len(line) <= TITLE_LENGTH:
        return line or DEFAULT_TITLE
    cut = line[:TITLE_LENGTH].rsplit(" ", 1)[0] or line[:TITLE_LENGTH]
    return cut.rstrip(" ,.;:") + "…"


def _like(query: str) -> str:
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ChatStore:
    """All conversations in the SQLite file at `path` (default: get_paths().chats_db)."""

    _CONVERSATION_FIELDS = ("title", "model_id", "model_path", "template_id", "system_prompt",
                            "mode", "params", "options")

    def __init__(self, path: str | os.PathLike | None = None, *, recover: bool = True) -> None:
        if path is None:
            from app.core.paths import get_paths
            path = get_paths().chats_db
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            prepare_file(self.path)
            self._migrate()
            self._check_tables()
            self.recovered = self.recover_interrupted() if recover else 0
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise store_error(self.path, exc) from None
        except ChatStoreError:
            self.close()
            raise

    # ------------------------------------------------------------------ connections
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # One connection per thread, never shared; check_same_thread=False only so that
            # close() can close them all from the thread that owns the store.
            conn = None
            try:
                conn = sqlite3.connect(self.path, timeout=10, isolation_level=None,
                                       check_same_thread=False)
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL: a commit is in the WAL when it returns, so it survives the app being
                # killed (only a power cut can lose the last commits, never corrupt the file).
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                raise store_error(self.path, exc) from None
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _tx(self):
        return _Transaction(self._conn())

    def close(self) -> None:
        """Close every thread's connection (call when no thread uses the store any more)."""
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def _migrate(self) -> None:
        with self._tx() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if version > SCHEMA_VERSION:
                raise ChatStoreError(f"the chats database {self.path} was written by a newer "
                                     f"Corral (schema {version}, this one knows "
                                     f"{SCHEMA_VERSION}); update Corral to open it",
                                     "newer", self.path)
            for step in MIGRATIONS[version:]:
                for statement in filter(str.strip, step.split(";")):
                    db.execute(statement)
            if row is None:
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif version != SCHEMA_VERSION:
                db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def _check_tables(self) -> None:
        """Every table the schema made is there (a file put together by hand, or by another
        program, can lack one; better said now than as a failure on the first click)."""
        rows = self._conn().execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        missing = {"schema_version", "conversation", "message"} - {r[0] for r in rows}
        if missing:
            raise damaged_error(self.path, f"its table {', '.join(sorted(missing))} is missing")

    def schema_version(self) -> int:
        return self._conn().execute("SELECT version FROM schema_version").fetchone()[0]

    def recover_interrupted(self) -> int:
        """Replies left 'streaming' by a killed app become 'interrupted'; returns how many."""
        with self._tx() as db:
            cur = db.execute("UPDATE message SET state = 'interrupted' WHERE state = 'streaming'")
            return cur.rowcount

    # ------------------------------------------------------------------ conversations
    def create_conversation(self, *, title: str = DEFAULT_TITLE, model_id: str | None = None,
                            model_path: str | None = None, template_id: str | None = None,
                            system_prompt: str | None = None, mode: str = "chat",
                            params: dict[str, Any] | None = None,
                            options: dict[str, Any] | None = None) -> Conversation:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO conversation (title, model_id, model_path, template_id, "
                "system_prompt, mode, params, options, created, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (title, model_id, model_path, template_id, system_prompt, mode,
                 json.dumps(params or {}), json.dumps(options or {}), now, now))
            cid = cur.lastrowid
        return self.conversation(cid)

    def conversation(self, cid: int) -> Conversation:
        row = self._conn().execute("SELECT * FROM conversation WHERE id = ?", (cid,)).fetchone()
        if row is None:
            raise ChatStoreError(f"no conversation {cid}")
        return _conversation(row)

    def conversations(self, limit: int | None = None) -> list[Conversation]:
        """All conversations, the most recently used first."""
        sql = "SELECT * FROM conversation ORDER BY updated DESC, id DESC"
        rows = self._conn().execute(sql + (" LIMIT ?" if limit else ""),
                                    (limit,) if limit else ()).fetchall()
        return [_conversation(r) for r in rows]

    def search(self, query: str) -> list[Conversation]:
        """Conversations whose title or any message contains `query` (case-insensitive)."""
        query = query.strip()
        if not query:
            return self.conversations()
        pattern = _like(query)
        rows = self._conn().execute(
            "SELECT * FROM conversation c WHERE c.title LIKE ?1 ESCAPE '\\' OR EXISTS "
            "(SELECT 1 FROM message m WHERE m.conversation_id = c.id "
            " AND m.content LIKE ?1 ESCAPE '\\') ORDER BY c.updated DESC, c.id DESC",
            (pattern,)).fetchall()
        return [_conversation(r) for r in rows]

    def update_conversation(self, cid: int, *, touch: bool = False, **changes: Any) -> Conversation:
        """Change some fields (title, model_id, model_path, template_id, system_prompt, mode,
        params, options); `touch` also moves it to the top of the list."""
        unknown = set(changes) - set(self._CONVERSATION_FIELDS)
        if unknown:
            raise ValueError(f"unknown conversation field(s) {sorted(unknown)}")
        if "mode" in changes and changes["mode"] not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {changes['mode']!r}")
        values = {k: json.dumps(v) if k in ("params", "options") else v for k, v in changes.items()}
        if touch:
            values["updated"] = time.time()
        if values:
            sets = ", ".join(f"{k} = ?" for k in values)
            with self._tx() as db:
                cur = db.execute(f"UPDATE conversation SET {sets} WHERE id = ?",
                                 (*values.values(), cid))
                if cur.rowcount == 0:
                    raise ChatStoreError(f"no conversation {cid}")
        return self.conversation(cid)

    def touch(self, cid: int) -> None:
        """Move a conversation to the top of the list (nothing happens if it was deleted)."""
        with self._tx() as db:
            db.execute("UPDATE conversation SET updated = ? WHERE id = ?", (time.time(), cid))

    def rename(self, cid: int, title: str) -> Conversation:
        title = " ".join(title.split())
        if not title:
            raise ValueError("a conversation needs a title")
        return self.update_conversation(cid, title=title)

    def set_options(self, cid: int, **changes: Any) -> Conversation:
        """Merge keys into the conversation's options (a None value removes a key)."""
        return self.update_conversation(
            cid, options=merged(self.conversation(cid).options, changes))

    def delete_conversation(self, cid: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM conversation WHERE id = ?", (cid,))

    def count(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM conversation").fetchone()[0]

    # ------------------------------------------------------------------ messages
    def add_message(self, cid: int, role: str, content: str, *, state: str = "complete",
                    stats: dict[str, Any] | None = None) -> Message:
        """Save a message now (and title an untitled conversation after its first user message)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}, not {state!r}")
        now = time.time()
        with self._tx() as db:
            cur = db.execute("INSERT INTO message (conversation_id, role, content, state, stats, "
                             "created) VALUES (?, ?, ?, ?, ?, ?)",
                             (cid, role, content, state, json.dumps(stats or {}), now))
            mid = cur.lastrowid
            db.execute("UPDATE conversation SET updated = ? WHERE id = ?", (now, cid))
            if role == "user":
                db.execute("UPDATE conversation SET title = ? WHERE id = ? AND title = ?",
                           (title_from(content), cid, DEFAULT_TITLE))
        return self.message(mid)

    def message(self, mid: int) -> Message:
        row = self._conn().execute("SELECT * FROM message WHERE id = ?", (mid,)).fetchone()
        if row is None:
            raise ChatStoreError(f"no message {mid}")
        return _message(row)

    def messages(self, cid: int) -> list[Message]:
        rows = self._conn().execute("SELECT * FROM message WHERE conversation_id = ? ORDER BY id",
                                    (cid,)).fetchall()
        return [_message(r) for r in rows]

    def update_message(self, mid: int, *, content: str | None = None, state: str | None = None,
                       stats: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {}
        if content is not None:
            values["content"] = content
        if state is not None:
            if state not in STATES:
                raise ValueError(f"state must be one of {STATES}, not {state!r}")
            values["state"] = state
        if stats is not None:
            values["stats"] = json.dumps(stats)
        if values:
            sets = ", ".join(f"{k} = ?" for k in values)
            with self._tx() as db:
                db.execute(f"UPDATE message SET {sets} WHERE id = ?", (*values.values(), mid))

    def delete_messages_from(self, cid: int, mid: int) -> int:
        """Delete message `mid` and every later one of the conversation (edit, regenerate)."""
        with self._tx() as db:
            return db.execute("DELETE FROM message WHERE conversation_id = ? AND id >= ?",
                              (cid, mid)).rowcount

    def begin_reply(self, cid: int, *, stats: dict[str, Any] | None = None,
                    interval_s: float = 0.25, max_pending: int = 2000) -> "ReplyWriter":
        """An assistant message in state 'streaming', saved as it grows (see ReplyWriter)."""
        message = self.add_message(cid, "assistant", "", state="streaming", stats=stats)
        return ReplyWriter(self, message.id, cid, stats or {}, interval_s, max_pending)

    # ------------------------------------------------------------------ export
    def export_json(self, cid: int) -> dict[str, Any]:
        data = self.conversation(cid).to_dict()
        data["messages"] = [m.to_dict() for m in self.messages(cid)]
        data["format"] = "corral-conversation"
        data["version"] = 1
        return data

    def export_markdown(self, cid: int) -> str:
        from app.core.turns.ending import describe_stats  # the one stats formatter

        conv = self.conversation(cid)
        lines = [f"# {conv.title}", ""]
        facts = [f"Model: {conv.model_id or '(none)'}", f"Mode: {conv.mode}"]
        if conv.template_id:
            facts.append(f"Template: {conv.template_id}")
        lines += ["*" + " · ".join(facts) + "*", ""]
        if conv.system_prompt:
            lines += ["**System**", "", conv.system_prompt, ""]
        for m in self.messages(conv.id):
            who = {"user": "You", "assistant": "Assistant", "system": "System"}[m.role]
            note = "" if m.state == "complete" else f" ({m.state})"
            lines += [f"## {who}{note}", "", m.content, ""]
            if m.role == "assistant" and m.stats:
                lines += [f"<sub>{describe_stats(m.stats, m.state)}</sub>", ""]
        return "\n".join(lines).rstrip() + "\n"

    def export_to_file(self, cid: int, path: str | os.PathLike) -> Path:
        """Write the conversation as Markdown (.md) or JSON (.json), atomically."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            text = json.dumps(self.export_json(cid), indent=2, ensure_ascii=False) + "\n"
        else:
            text = self.export_markdown(cid)
        write_text_atomic(path, text)
        return path


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on an exception) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
