"""Damaged settings and history files: moved aside (a backup beside them), defaults used, the user
told (a warning from the store, a notification in the app), nothing crashes."""

from __future__ import annotations

import json
import sqlite3

import pytest

from rnnchat.core import paths
from rnnchat.session.history import Conversation, HistoryStore
from rnnchat.session.settings import Settings
from rnnchat.session.types import Turn
from tests.tui.tui_helpers import Harness, ready, send, wait_for


def backups(path):
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name + ".damaged-")
                  and not p.name.endswith(("-wal", "-shm", "-journal")))


# ---- settings ------------------------------------------------------------------------------
BAD_SETTINGS = {
    "garbage bytes": b"\x00\xff\xfe garbage \x80\x81",
    "truncated JSON": b'{"temperature": 0.5, "top_k": ',
    "empty file": b"",
    "a JSON list": b"[1, 2, 3]",
    "a JSON string": b'"settings"',
    "JSON null": b"null",
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("content", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_unreadable_settings_are_moved_aside(content):
    path = paths.settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    settings, warning = Settings.load()
    assert settings == Settings(), "the defaults are used"
    assert warning and "damaged" in warning and "\n" not in warning
    [backup] = backups(path)
    assert backup.read_bytes() == content, "the damaged file is kept, byte for byte"
    assert backup.name in warning, "the user is told where it went"
    assert not path.exists()
    settings.save()
    assert Settings.load() == (Settings(), None)


WRONG_TYPES = [
    {"temperature": "hot"},
    {"temperature": float("nan")},
    {"top_k": 2.5},
    {"top_p": -1},
    {"max_chars": True},
    {"seed": "abc"},
    {"repetition_penalty": [1]},
    {"model": 42},
    {"theme": {"name": "dark"}},
    {"confidence": "yes"},
]


@pytest.mark.parametrize("bad", WRONG_TYPES, ids=lambda d: next(iter(d)))
def test_wrong_types_fall_back_to_defaults_and_keep_the_good_values(bad):
    path = paths.settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    good = {"temperature": 0.3, "model": "tiny", "confidence": True}
    data = {**good, **bad}
    path.write_text(json.dumps(data), encoding="utf-8")  # NaN is written as the JSON extension NaN
    settings, warning = Settings.load()
    key = next(iter(bad))
    assert getattr(settings, key) == getattr(Settings(), key)
    for k, v in good.items():
        if k not in bad:
            assert getattr(settings, k) == v
    settings.params().validate()
    assert warning and key in warning
    [backup] = backups(path)
    assert json.loads(backup.read_text(encoding="utf-8")).keys() == data.keys()


def test_unknown_keys_are_ignored_quietly():
    path = paths.settings_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"temperature": 0.4, "from_the_future": 1}), encoding="utf-8")
    settings, warning = Settings.load()
    assert settings.temperature == 0.4 and warning is None and not backups(path)


# ---- history -------------------------------------------------------------------------------
def conversation(i: int) -> Conversation:
    return Conversation(id=None, title=f"chat {i}", model="tiny", params={"temperature": 0.5},
                        turns=[Turn("user", f"hello {i}", fed=f"hello {i}\n"),
                               Turn("model", f"reply {i}", fed=f"reply {i}\n", reason="stop", probs=[0.5])])


def good_history(path, n: int = 30) -> None:
    store = HistoryStore(path)
    for i in range(n):
        store.save(conversation(i))
    HistoryStore._checked.clear()  # a new process would check the file again


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def scribble(path):
    data = bytearray(path.read_bytes())
    for off in range(4096, len(data), 512):  # every page after the header
        data[off:off + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))


def checkpoint_wal(path):
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


DAMAGE = {
    "garbage bytes": lambda p: p.write_bytes(b"\x00\xffnot a database at all" * 300),
    "truncated": truncate,
    "scribbled pages": scribble,
    "text file": lambda p: p.write_text("hello\n"),
    "header only": lambda p: p.write_bytes(p.read_bytes()[:100]),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_damaged_history_is_moved_aside_and_a_new_one_started(tmp_path, damage):
    path = tmp_path / "history.sqlite3"
    good_history(path)
    checkpoint_wal(path)
    damage(path)
    damaged = path.read_bytes()
    store = HistoryStore(path)
    rows = store.list()  # no exception
    assert rows == []
    [warning] = store.take_warnings()
    assert "damaged" in warning and "moved aside" in warning and "\n" not in warning
    [backup] = backups(path)
    assert backup.read_bytes() == damaged and backup.name in warning
    conv_id = store.save(conversation(99))
    assert [r.id for r in store.list()] == [conv_id] and store.load(conv_id).title == "chat 99"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert store.take_warnings() == []


def test_a_save_into_a_damaged_history_is_not_lost(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_bytes(b"SQLite format 3\x00" + b"\x13" * 5000)
    store = HistoryStore(path)
    conv_id = store.save(conversation(1))
    assert store.load(conv_id).turns[1].text == "reply 1"
    assert store.take_warnings() and len(backups(path)) == 1


def test_a_damaged_conversation_row_is_one_clear_error(tmp_path):
    from rnnchat.session.types import SessionError

    path = tmp_path / "history.sqlite3"
    store = HistoryStore(path)
    conv_id = store.save(conversation(1))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE conversations SET params='[1,2' WHERE id=?", (conv_id,))
    with pytest.raises(SessionError, match="damaged"):
        store.load(conv_id)
    assert store.list()[0].id == conv_id, "the rest of the history still works"


def test_a_locked_history_is_not_mistaken_for_a_damaged_one(tmp_path):
    from rnnchat.session.types import SessionError

    path = tmp_path / "history.sqlite3"
    store = HistoryStore(path)
    store.save(conversation(1))
    store.BUSY_TIMEOUT = 0.2
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SessionError, match="locked"):
            store.save(conversation(2))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not backups(path) and len(store.list()) == 1


# ---- the app tells the user ------------------------------------------------------------------
async def test_app_notifies_a_damaged_settings_file_and_a_damaged_history():
    from rnnchat.tui.app import RnnchatApp  # noqa: F401 - import before the pilot starts

    paths.settings_file().parent.mkdir(parents=True, exist_ok=True)
    paths.settings_file().write_bytes(b"\xde\xad\xbe\xef")
    paths.history_db().parent.mkdir(parents=True, exist_ok=True)
    paths.history_db().write_bytes(b"this is not SQLite" * 100)
    settings, warning = Settings.load()
    h = Harness(autosave=True)
    app = h.app(settings=settings, settings_warning=warning)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await wait_for(pilot, lambda: any("history" in m and "moved aside" in m for _, m in h.notes),
                       "the history warning")
        assert any("settings" in m and "damaged" in m for sev, m in h.notes if sev == "warning")
        await send(pilot, "Hello")
        assert h.session.conversation_id is not None, "the conversation is saved in the new history"
        assert app.is_running and not h.errors()
    assert len(HistoryStore().list()) == 1
    assert len(backups(paths.history_db())) == 1 and len(backups(paths.settings_file())) == 1
