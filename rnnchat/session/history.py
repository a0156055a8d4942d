"""Conversations in SQLite (``paths.history_db()``): turns, settings, seeds and per-turn states.

States are stored as safetensors bytes (see ``rnnchat/engine/states.py``), never pickled. Each call opens
its own connection, so the store can be used from the app's worker threads.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from array import array
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from rnnchat.core import paths
from rnnchat.core.safe_files import refuse_special
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


def _is_damage(exc: BaseException) -> bool:
    """A damaged file (not a database, malformed), as opposed to a busy or locked one."""
    name = getattr(exc, "sqlite_errorname", "")
    if name:
        return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


class HistoryStore:
    """Each call opens its own connection (WAL journal, 10 s busy timeout), so two app instances
    and the app's worker threads can write at once. A damaged file is moved aside
    (``history.sqlite3.damaged-<time>``), a new history is started, and :meth:`take_warnings`
    returns what happened for the user."""

    BUSY_TIMEOUT = 10.0
    _checked: set[str] = set()  # files given a quick_check in this process
    _lock = threading.Lock()

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else paths.history_db()
        self.warnings: list[str] = []

    def take_warnings(self) -> list[str]:
        out, self.warnings = self.warnings, []
        return out

    def _open(self) -> sqlite3.Connection:
        try:
            for side in ("", "-wal", "-shm", "-journal"):  # sqlite would block on a FIFO, read a device
                refuse_special(self.path.with_name(self.path.name + side), "chat history")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self.BUSY_TIMEOUT, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise SessionError(f"cannot open the chat history {self.path}: {exc}") from None
        try:
            db.execute("PRAGMA foreign_keys = ON")
            key = str(self.path.resolve())
            if key not in self._checked:
                rows = db.execute("PRAGMA quick_check").fetchall()
                if rows != [("ok",)]:
                    raise sqlite3.DatabaseError("quick_check: " + "; ".join(str(r[0]) for r in rows[:3]))
                self._checked.add(key)
            if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SessionError(f"the chat history {self.path} was written by a newer rnnchat; upgrade rnnchat")
            if version < SCHEMA_VERSION:
                db.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;")
        except BaseException:
            db.close()
            raise
        return db

    def _connect(self) -> sqlite3.Connection:
        try:
            return self._open()
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise SessionError(f"cannot open the chat history {self.path}: {exc}") from None
            self._move_aside(exc)
        try:
            return self._open()
        except sqlite3.Error as exc:
            raise SessionError(f"cannot open the chat history {self.path}: {exc}") from None

    def _move_aside(self, exc: BaseException) -> None:
        """Keep the damaged file (and its WAL) beside the new one and tell the user."""
        with self._lock:
            if not self.path.exists():
                return
            stamp = time.strftime("%Y%m%d-%H%M%S")
            backup = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
            n = 1
            while backup.exists():
                n += 1
                backup = self.path.with_name(f"{self.path.name}.damaged-{stamp}-{n}")
            try:
                os.replace(self.path, backup)
                for ext in ("-wal", "-shm", "-journal"):
                    side = self.path.with_name(self.path.name + ext)
                    if side.exists():
                        os.replace(side, backup.with_name(backup.name + ext))
            except OSError as err:
                raise SessionError(f"the chat history {self.path} is damaged ({exc}) and could not be moved "
                                   f"aside ({err}); move it away to start a new one") from None
            self._checked.discard(str(self.path.resolve()))
            self.warnings.append(f"the chat history {self.path} was damaged ({exc}); it was moved aside to "
                                 f"{backup.name} and a new history was started")

    def _run(self, what: str, fn):
        """Run ``fn(db)``; if the file turns out to be damaged mid-way, move it aside and retry once."""
        for attempt in (0, 1):
            try:
                with closing(self._connect()) as db:
                    return fn(db)
            except sqlite3.DatabaseError as exc:
                if attempt == 0 and _is_damage(exc):
                    self._move_aside(exc)
                    continue
                raise SessionError(f"{what} {self.path}: {exc}") from None

    def save(self, conv: Conversation) -> int:
        """Insert or replace a whole conversation (one transaction); returns its id."""
        now = time.time()
        conv.created = conv.created or now
        conv.updated = now
        row = (conv.title, conv.model, conv.model_path, conv.signature, conv.created, conv.updated,
               json.dumps(conv.params), conv.state)
        turns = [(i, t.role, t.text, t.fed, t.speaker, t.body_start, t.reason, t.seed, t.chars_per_s,
                  json.dumps(t.params) if t.params is not None else None,
                  array("f", t.probs).tobytes() if t.probs else None,
                  t.snapshot.blob if t.snapshot else None, t.created or now)
                 for i, t in enumerate(conv.turns)]

        def write(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")  # take the write lock now (waits up to the busy timeout)
            try:
                conv_id = conv.id
                if conv_id is None or not db.execute("SELECT 1 FROM conversations WHERE id=?", (conv_id,)).fetchone():
                    conv_id = db.execute("INSERT INTO conversations (title, model, model_path, signature, created, "
                                         "updated, params, state) VALUES (?,?,?,?,?,?,?,?)", row).lastrowid
                else:
                    db.execute("UPDATE conversations SET title=?, model=?, model_path=?, signature=?, created=?, "
                               "updated=?, params=?, state=? WHERE id=?", (*row, conv_id))
                    db.execute("DELETE FROM turns WHERE conversation_id=?", (conv_id,))
                db.executemany(
                    "INSERT INTO turns (conversation_id, idx, role, text, fed, speaker, body_start, reason, seed, "
                    "chars_per_s, params, probs, snapshot, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(conv_id, *t) for t in turns])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return conv_id

        conv.id = self._run("could not save the conversation to", write)
        return conv.id

    def list(self, limit: int = 200) -> list[ConversationSummary]:
        rows = self._run("could not read the chat history", lambda db: db.execute(
            "SELECT c.id, c.title, c.model, c.created, c.updated, "
            "(SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id) "
            "FROM conversations c ORDER BY c.updated DESC LIMIT ?", (limit,)).fetchall())
        return [ConversationSummary(*r) for r in rows if _summary_ok(r)]

    def user_messages(self, limit: int = 200) -> list[str]:
        """The user's messages of every conversation, newest first (↑ recall)."""
        rows = self._run("could not read the chat history", lambda db: db.execute(
            "SELECT text FROM turns WHERE role = 'user' ORDER BY created DESC LIMIT ?", (limit,)).fetchall())
        return [r[0] for r in rows if isinstance(r[0], str)]

    def load(self, conv_id: int) -> Conversation:
        def read(db: sqlite3.Connection):
            row = db.execute("SELECT id, title, model, model_path, signature, params, state, created, updated "
                             "FROM conversations WHERE id=?", (conv_id,)).fetchone()
            if row is None:
                return None, []
            return row, db.execute("SELECT role, text, fed, speaker, body_start, reason, seed, chars_per_s, params, "
                                   "probs, snapshot, created FROM turns WHERE conversation_id=? ORDER BY idx",
                                   (conv_id,)).fetchall()

        row, turns = self._run("could not read the chat history", read)
        if row is None:
            raise SessionError(f"there is no saved conversation {conv_id}")
        try:
            _check_row(row, CONVERSATION_TYPES)
            for t in turns:
                _check_row(t, TURN_TYPES)
            out = Conversation(id=row[0], title=row[1], model=row[2], model_path=row[3], signature=row[4],
                               params=_json_dict(row[5]), state=row[6], created=row[7], updated=row[8])
            for (role, text, fed, speaker, body_start, reason, seed, cps, params, probs, snap, created) in turns:
                p = array("f")
                if probs:
                    p.frombytes(probs)
                out.turns.append(Turn(role=role, text=text, fed=fed, speaker=speaker, body_start=body_start,
                                      reason=reason, seed=seed, chars_per_s=cps,
                                      params=_json_dict(params) if params else None, probs=list(p),
                                      snapshot=Snapshot(blob=snap) if snap is not None else None, created=created))
        except (TypeError, ValueError) as exc:
            raise SessionError(f"saved conversation {conv_id} is damaged: {exc}") from None
        return out

    def delete(self, conv_id: int) -> None:
        def remove(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM conversations WHERE id=?", (conv_id,))
            db.execute("COMMIT")

        self._run(f"could not delete conversation {conv_id} from", remove)


_TEXT, _INT, _NUM, _BLOB = (str,), (int,), (int, float), (bytes,)
_OPT = type(None)
CONVERSATION_TYPES = (_INT, _TEXT, _TEXT, _TEXT, _TEXT, _TEXT, _BLOB + (_OPT,), _NUM, _NUM)
TURN_TYPES = (_TEXT, _TEXT, _TEXT, _TEXT + (_OPT,), _INT, _TEXT + (_OPT,), _INT + (_OPT,), _NUM + (_OPT,),
              _TEXT + (_OPT,), _BLOB + (_OPT,), _BLOB + (_OPT,), _NUM)


def _check_row(row, types) -> None:
    """SQLite keeps whatever type was written: each column is checked before it is used."""
    for i, (value, kinds) in enumerate(zip(row, types)):
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise ValueError(f"column {i} holds a {type(value).__name__}")
    if row and types is TURN_TYPES:
        if row[0] not in ("user", "model"):
            raise ValueError(f"a turn has the role {row[0]!r}")
        if row[9] is not None and len(row[9]) % 4:
            raise ValueError("a turn's probabilities are not whole floats")


def _summary_ok(row) -> bool:
    return (isinstance(row[0], int) and isinstance(row[1], str) and isinstance(row[2], str)
            and all(isinstance(v, (int, float)) for v in row[3:6]))


def _json_dict(text) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value
