"""Two (here three) app instances at once do not corrupt the history: separate processes, each a
session saving after every reply (as the app does), write to the same SQLite file; afterwards it
passes ``PRAGMA integrity_check`` and holds every conversation, turn for turn."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap

from rnnchat.session.history import HistoryStore

WRITER = textwrap.dedent("""
    import sys
    from rnnchat.session.chat import ChatSession
    from rnnchat.session.fake_engine import FakeEngine
    from rnnchat.session.history import HistoryStore

    path, who, convs, turns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    s = ChatSession(store=HistoryStore(path), autosave=True,
                    engine=FakeEngine.opener(replies=lambda text, n: f"R{n}:\\nreply {n}"))
    s.load()
    for c in range(convs):
        for t in range(turns):
            reply = s.send(f"{who} conversation {c} message {t}")
            for _ in reply:
                pass
            assert s.conversation_id is not None and not reply.notes, reply.notes
        if c % 3 == 0:
            s.store.list()  # readers too, while the others write
        s.reset()
    print("done", who)
""")

PROCS, CONVS, TURNS = 3, 12, 3


def test_concurrent_instances_keep_every_conversation(tmp_path):
    path = tmp_path / "history.sqlite3"
    HistoryStore(path).list()  # both kinds of start: this one exists, the others open it at once
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"app{i}", str(CONVS), str(TURNS)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(PROCS)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "done" in out and "Traceback" not in err
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    store = HistoryStore(path)
    rows = store.list(limit=10_000)
    assert len(rows) == PROCS * CONVS
    titles = sorted(r.title for r in rows)
    assert titles == sorted(f"app{i} conversation {c} message 0" for i in range(PROCS) for c in range(CONVS))
    for r in rows:
        conv = store.load(r.id)
        assert [t.role for t in conv.turns] == ["user", "model"] * TURNS
        who, _, c = r.title.split()[:3]
        assert [t.text for t in conv.turns if t.role == "user"] == [
            f"{who} conversation {c} message {t}" for t in range(TURNS)]
        assert all(t.reason == "stop" and t.text.startswith("R") for t in conv.turns if t.role == "model")
    assert not store.take_warnings()
    assert not list(tmp_path.glob("*.damaged-*"))


def test_two_stores_in_threads_of_one_process(tmp_path):
    """The app's worker threads (autosave, history screen, reopen) each open their own connection."""
    import threading

    from rnnchat.session.history import Conversation
    from rnnchat.session.types import Turn

    path = tmp_path / "history.sqlite3"
    errors: list[BaseException] = []

    def write(who: int) -> None:
        store = HistoryStore(path)
        try:
            for i in range(25):
                conv = Conversation(id=None, title=f"{who}-{i}", model="m",
                                    turns=[Turn("user", "x", fed="x"), Turn("model", "y", fed="y", reason="stop")])
                store.save(conv)
                conv.turns.append(Turn("user", "z", fed="z"))
                store.save(conv)  # an update replaces the turns in one transaction
                store.list(5)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    store = HistoryStore(path)
    rows = store.list(limit=1000)
    assert len(rows) == 100 and {r.turns for r in rows} == {3}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
