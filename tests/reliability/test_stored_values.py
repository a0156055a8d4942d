"""Principle 1 for what rnnchat stored itself and reads back: the corpus registry and the chat
history are checked by type before use; a bad entry is left out or one clear error (issue 15)."""

import json
import sqlite3

import pytest

from rnnchat.core.errors import CorpusError


def test_a_registered_corpus_entry_of_the_wrong_shape_is_left_out(rnnchat_home, tiny_corpus):
    from rnnchat.store import corpora

    corpora.registry_path().parent.mkdir(parents=True)
    good = {"path": str(tiny_corpus), "sha256": "0" * 64, "size": 10, "chars": 10}
    corpora.registry_path().write_text(json.dumps({"corpora": {
        "good": good, "nopath": {"sha256": "0" * 64}, "badsize": dict(good, size="big"),
        "badsha": dict(good, sha256=5), "Bad\x1bName": good, "list": [1]}}))
    assert list(corpora.load_registry()) == ["good"]
    corpora.registry_path().write_text(json.dumps({"corpora": ["not", "an", "object"]}))
    with pytest.raises(CorpusError, match="unreadable"):
        corpora.load_registry()


def test_history_rows_of_the_wrong_type_are_one_error(rnnchat_home):
    from rnnchat.session.history import Conversation, HistoryStore
    from rnnchat.session.types import SessionError, Turn

    store = HistoryStore()
    conv_id = store.save(Conversation(None, "hello", "tiny", turns=[Turn(role="user", text="hi", fed="hi")]))
    good = store.load(conv_id)
    assert good.turns[0].text == "hi"
    for column, value in (("role", 5), ("role", "root"), ("text", b"\x1b"), ("probs", b"abc"),
                          ("body_start", "zero"), ("created", "yesterday")):
        with sqlite3.connect(store.path) as db:
            db.execute(f"UPDATE turns SET {column}=? WHERE conversation_id=?", (value, conv_id))
        with pytest.raises(SessionError, match="damaged") as info:
            store.load(conv_id)
        assert "\n" not in str(info.value)
        store.save(good)  # put the good row back for the next case
        conv_id = good.id
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE conversations SET title=? WHERE id=?", (b"\x00blob", conv_id))
    assert [c.id for c in store.list()] == []  # a summary of the wrong type is left out of the list
