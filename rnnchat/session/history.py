"""Conversations in SQLite (``paths.history_db()``): turns, settings, seeds and per-turn states.

States are stored as safetensors bytes (see ``states.py``), never pickled. Each call opens
its own connection, so the store can be used from the app's worker threads.
"""

from __future__ import annotations

import json
import sqlite3
import time
from array import array
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from rnnchat import paths
from rnnchat.session.types import SessionError, Snapshot, Turn

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    title       TEXT NOT NULL,
    model       TEXT NOT NULL,
    model_path  TEXT NOT NULL DEFAULT '',
    signature   TEXT NOT NULL DEFAULT '',
    created     REAL NOT NULL,
    updated     REAL NOT NULL,
    params      TEXT NOT NULL,
    state       BLOB
);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,
    role        TEXT NOT NULL,
    text        TEXT NOT NULL,
    fed         TEXT NOT NULL,
    speaker     TEXT,
    body_start  INTEGER NOT NULL DEFAULT 0,
    reason      TEXT,
    seed        INTEGER,
    chars_per_s REAL,
    params      TEXT,
    probs       BLOB,
    snapshot    BLOB,
    created     REAL NOT NULL,
    PRIMARY KEY (conversation_id, idx)
);
"""


@dataclass
class ConversationSummary:
    id: int
    title: str
    model: str
    created: float
    updated: float
    turns: int


@dataclass
class Conversation:
    id: int | None
    title: str
    model: str
    model_path: str = ""
    signature: str = ""
    params: dict = field(default_factory=dict)
    turns: list[Turn] = field(default_factory=list)
    state: bytes | None = None  # the state after the last turn
    created: float = 0.0
    updated: float = 0.0


def title_of(turns: list[Turn]) -> str:
    for t in turns:
        if t.role == "user" and t.text.strip():
            line = " ".join(t.text.split())
            return line if len(line) <= 60 else line[:59] + "…"
    return "(empty)"


class HistoryStore:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else paths.history_db()

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=5.0)
        except (OSError, sqlite3.Error) as exc:
            raise SessionError(f"cannot open the chat history {self.path}: {exc}") from None
        db.execute("PRAGMA foreign_keys = ON")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                db.close()
                raise SessionError(f"the chat history {self.path} was written by a newer rnnchat; upgrade rnnchat")
            if version < SCHEMA_VERSION:
                db.executescript(SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.commit()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise SessionError(f"the chat history {self.path} is damaged ({exc}); move it away to start a new one") from None
        return db

    def save(self, conv: Conversation) -> int:
        """Insert or replace a whole conversation; returns its id."""
        now = time.time()
        conv.created = conv.created or now
        conv.updated = now
        try:
            with closing(self._connect()) as db, db:
                row = (conv.title, conv.model, conv.model_path, conv.signature, conv.created, conv.updated,
                       json.dumps(conv.params), conv.state)
                if conv.id is None or not db.execute("SELECT 1 FROM conversations WHERE id=?", (conv.id,)).fetchone():
                    cur = db.execute("INSERT INTO conversations (title, model, model_path, signature, created, "
                                     "updated, params, state) VALUES (?,?,?,?,?,?,?,?)", row)
                    conv.id = cur.lastrowid
                else:
                    db.execute("UPDATE conversations SET title=?, model=?, model_path=?, signature=?, created=?, "
                               "updated=?, params=?, state=? WHERE id=?", (*row, conv.id))
                    db.execute("DELETE FROM turns WHERE conversation_id=?", (conv.id,))
                db.executemany(
                    "INSERT INTO turns (conversation_id, idx, role, text, fed, speaker, body_start, reason, seed, "
                    "chars_per_s, params, probs, snapshot, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(conv.id, i, t.role, t.text, t.fed, t.speaker, t.body_start, t.reason, t.seed, t.chars_per_s,
                      json.dumps(t.params) if t.params is not None else None,
                      array("f", t.probs).tobytes() if t.probs else None,
                      t.snapshot.blob if t.snapshot else None, t.created or now)
                     for i, t in enumerate(conv.turns)])
        except sqlite3.Error as exc:
            raise SessionError(f"could not save the conversation to {self.path}: {exc}") from None
        return conv.id

    def list(self, limit: int = 200) -> list[ConversationSummary]:
        try:
            with closing(self._connect()) as db:
                rows = db.execute(
                    "SELECT c.id, c.title, c.model, c.created, c.updated, "
                    "(SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id) "
                    "FROM conversations c ORDER BY c.updated DESC LIMIT ?", (limit,)).fetchall()
        except sqlite3.Error as exc:
            raise SessionError(f"could not read the chat history {self.path}: {exc}") from None
        return [ConversationSummary(*r) for r in rows]

    def load(self, conv_id: int) -> Conversation:
        try:
            with closing(self._connect()) as db:
                row = db.execute("SELECT id, title, model, model_path, signature, params, state, created, updated "
                                 "FROM conversations WHERE id=?", (conv_id,)).fetchone()
                if row is None:
                    raise SessionError(f"there is no saved conversation {conv_id}")
                turns = db.execute("SELECT role, text, fed, speaker, body_start, reason, seed, chars_per_s, params, "
                                   "probs, snapshot, created FROM turns WHERE conversation_id=? ORDER BY idx",
                                   (conv_id,)).fetchall()
        except sqlite3.Error as exc:
            raise SessionError(f"could not read the chat history {self.path}: {exc}") from None
        out = Conversation(id=row[0], title=row[1], model=row[2], model_path=row[3], signature=row[4],
                           params=json.loads(row[5]), state=row[6], created=row[7], updated=row[8])
        for (role, text, fed, speaker, body_start, reason, seed, cps, params, probs, snap, created) in turns:
            p = array("f")
            if probs:
                p.frombytes(probs)
            out.turns.append(Turn(role=role, text=text, fed=fed, speaker=speaker, body_start=body_start,
                                  reason=reason, seed=seed, chars_per_s=cps,
                                  params=json.loads(params) if params else None, probs=list(p),
                                  snapshot=Snapshot(blob=snap) if snap is not None else None, created=created))
        return out

    def delete(self, conv_id: int) -> None:
        try:
            with closing(self._connect()) as db, db:
                db.execute("DELETE FROM conversations WHERE id=?", (conv_id,))
        except sqlite3.Error as exc:
            raise SessionError(f"could not delete conversation {conv_id}: {exc}") from None
