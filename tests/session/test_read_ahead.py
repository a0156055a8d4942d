"""Read-ahead: the draft is read while typed; a send of it reads only the rest, with the same result."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from rnnchat.session import ChatSession, SessionError
from rnnchat.session.framing import Framing
from rnnchat.session import readahead
from rnnchat.session.readahead import MAX_MARKS, ReadAhead
from rnnchat.session.types import Snapshot

from tests.session.test_session import assert_state_close, drain


class CountingFeed:
    """A torch-free model: the state is the text read so far; records every feed."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.gate = gate
        self.entered = threading.Event()

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def feed(self, ids, state):
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        chunk = "".join(map(chr, ids))
        self.calls.append((state, chunk))
        return f"logits<{state + chunk}>", state + chunk


def ahead_with(feed: CountingFeed):
    ra = ReadAhead(ThreadPoolExecutor(1))
    base = Snapshot("", None)
    return ra, base, lambda text: ra.request(base, text, feed.encode, feed.feed)


def test_typing_feeds_each_new_character_once_and_take_returns_the_read_prefix():
    feed = CountingFeed()
    ra, base, ask = ahead_with(feed)
    for k in range(1, 6):
        ask("hello"[:k])
        assert ra.wait_idle(10)
    assert [c for _, c in feed.calls] == list("hello")
    n, state, logits = ra.take(base, feed.encode("hello\n\n"))
    assert (n, state, logits) == (5, "hello", "logits<hello>")


def test_a_backspace_resumes_from_the_state_before_it():
    feed = CountingFeed()
    ra, base, ask = ahead_with(feed)
    for draft in ("abc", "abcd", "abc", "abX"):
        ask(draft)
        assert ra.wait_idle(10)
    # "abcd" -> "abc" needs no feed (the state at "abc" is kept); "abX" has no mark at "ab": from ""
    assert feed.calls == [("", "abc"), ("abc", "d"), ("", "abX")]
    assert ra.take(base, feed.encode("abX!"))[:2] == (3, "abX")


def test_take_of_other_text_or_another_base_uses_only_what_matches():
    feed = CountingFeed()
    ra, base, ask = ahead_with(feed)
    ask("abc")
    ask("abcdef")  # may be merged with the first while the thread is busy: both end at "abcdef"
    assert ra.wait_idle(10)
    assert ra.take(base, feed.encode("abcdxx"))[0] in (0, 3)  # the mark at "abc" at most, never "abcdef"
    ask("abc")
    assert ra.wait_idle(10)
    assert ra.take(Snapshot("", None), feed.encode("abc")) == (0, None, None)  # another starting state
    assert ra.take(base, feed.encode("abc")) == (0, None, None)  # take empties it


def take_while_a_feed_is_held(draft: str, sent: str):
    """Ask for ``draft``, hold its first feed at a gate, take ``sent`` from another thread; check
    that take waits for the feed in progress. Returns (take's result, the feed)."""
    gate = threading.Event()
    feed = CountingFeed(gate)
    ra, base, ask = ahead_with(feed)
    ask(draft)
    assert feed.entered.wait(10)
    result = []
    t = threading.Thread(target=lambda: result.append(ra.take(base, feed.encode(sent))))
    t.start()
    t.join(0.2)
    assert t.is_alive()  # waiting for the feed in progress
    gate.set()
    t.join(10)
    return result, feed


def test_take_waits_for_a_read_in_progress_and_drops_a_request_not_started():
    result, _ = take_while_a_feed_is_held("abc", "abc!")
    assert result == [(3, "abc", "logits<abc>")]


def test_a_long_paste_is_read_a_chunk_per_feed(monkeypatch):
    monkeypatch.setattr(readahead, "READ_CHUNK", 4)
    feed = CountingFeed()
    ra, base, ask = ahead_with(feed)
    ask("x" * 100 + "y" * 3)
    assert ra.wait_idle(10)
    assert [len(c) for _, c in feed.calls] == [4] * 25 + [3]
    assert "".join(c for _, c in feed.calls) == "x" * 100 + "yyy"
    assert len(ra._read.marks) <= MAX_MARKS + 1
    assert ra.take(base, feed.encode("x" * 100 + "yyy\n"))[:2] == (103, "x" * 100 + "yyy")


def test_take_during_a_long_paste_waits_for_one_chunk_and_keeps_what_was_read(monkeypatch):
    monkeypatch.setattr(readahead, "READ_CHUNK", 4)
    result, feed = take_while_a_feed_is_held("abcdefghijklmnop", "abcdefghijklmnop!")
    assert result == [(4, "abcd", "logits<abcd>")] and len(feed.calls) == 1


def test_a_newer_draft_does_not_wait_for_the_whole_paste(monkeypatch):
    monkeypatch.setattr(readahead, "READ_CHUNK", 4)
    gate = threading.Event()
    feed = CountingFeed(gate)
    ra, base, ask = ahead_with(feed)
    ask("a" * 40)
    assert feed.entered.wait(10)
    ask("b")  # the paste was replaced: its read stops at the chunk boundary
    gate.set()
    assert ra.wait_idle(10)
    assert [c for _, c in feed.calls] == ["aaaa", "b"]


def test_clear_forgets_and_marks_stay_bounded():
    feed = CountingFeed()
    ra, base, ask = ahead_with(feed)
    text = ""
    for k in range(3 * MAX_MARKS):
        text += "x"
        ask(text)
        assert ra.wait_idle(10)
    assert len(ra._read.marks) <= MAX_MARKS + 1
    ra.clear()
    assert ra.take(base, feed.encode(text)) == (0, None, None)


def test_framing_head_is_the_start_of_the_framed_turn():
    f = Framing("YOU:\n{text}\n\n", ("\n\n",))
    for close in (False, True):
        assert f.frame("hi there", close).startswith(f.head("hi there", close))
        assert f.head("hi there", close).endswith("YOU:\nhi there")
    assert Framing("no text slot").head("hi") is None


# ---- with a tiny real model -----------------------------------------------------------------
def test_send_after_read_ahead_reads_only_the_rest_and_matches_a_cold_send(tiny_model):
    draft = "Cat tree and a dog"
    cold = ChatSession(str(tiny_model), autosave=False)
    cold.load()
    warm = ChatSession(str(tiny_model), autosave=False)
    warm.load()
    for s in (cold, warm):
        s.update_params(seed=3, max_chars=40)
        drain(s.send("Hello"))  # a second turn: the draft also carries the closing of the first
    for k in range(1, len(draft) + 1):
        warm.read_ahead(draft[:k])
    assert warm.read_ahead_done(10)
    head = warm.framing.head(draft, close_previous=warm._closes_previous())
    reply_cold, reply_warm = cold.send(draft), warm.send(draft)
    text_cold, text_warm = drain(reply_cold), drain(reply_warm)
    assert reply_cold.read_ahead == 0
    assert reply_warm.read_ahead == len(warm.engine.encode(head).ids)
    assert warm.turns[-1].read_ahead == reply_warm.read_ahead and cold.turns[-1].read_ahead == 0
    assert warm.turns[-1].first_char_ms is not None and cold.turns[-1].first_char_ms is not None
    assert text_warm == text_cold
    assert_state_close(warm.current_state, cold.current_state)
    assert warm.history_text() == cold.history_text()


def test_read_ahead_of_a_draft_that_is_then_changed_is_not_used_wrongly(session):
    session.update_params(seed=9)
    session.read_ahead("Cat tree")
    assert session.read_ahead_done(10)
    reply = session.send("Dog")  # not an extension of the draft
    drain(reply)
    assert reply.read_ahead == 0  # the state after "BOB:\nCat tree" is no use for "BOB:\nDog"
    engine = session.engine.engine  # the torch Engine behind the session's ChatEngine
    engine.set_prompt_precision("fp32")  # the turns were short: read in fp32
    _, whole = engine.feed(engine.encode(session.history_text()).ids, engine.initial_state())
    assert_state_close(session.current_state, whole)


@pytest.mark.parametrize("move", ["rewind", "reset"])
def test_a_draft_read_before_the_conversation_moved_is_not_used(session, move):
    session.update_params(seed=2)
    drain(session.send("Cat"))
    session.read_ahead("Sea dog")
    assert session.read_ahead_done(10)
    session.rewind(0) if move == "rewind" else session.reset()
    reply = session.send("Sea dog")
    drain(reply)
    assert reply.read_ahead == 0
    assert session.history_text().startswith("BOB:\nSea dog\n\n")


def test_read_ahead_is_ignored_while_a_reply_streams(session):
    reply = session.send("Cat")
    session.read_ahead("Dog")
    assert session.read_ahead_done(10) and session._ahead.reads == 0
    drain(reply)


def test_loads_and_reads_run_on_the_one_engine_thread_and_close_ends_it(tiny_model, monkeypatch):
    import rnnchat.engine.generate as generate

    threads = set()
    real_feed = generate.Engine.feed

    def feed(self, ids, state):
        threads.add(threading.current_thread())
        return real_feed(self, ids, state)

    monkeypatch.setattr(generate.Engine, "feed", feed)
    s = ChatSession(str(tiny_model), autosave=False)
    s.load()
    s.read_ahead("Cat")
    drain(s.send("Cat tree"))
    assert len(threads) == 1
    (engine_thread,) = threads
    assert engine_thread.name.startswith("rnnchat-engine") and engine_thread is not threading.current_thread()
    s.close()
    engine_thread.join(10)
    assert not engine_thread.is_alive()


def test_torch_steps_run_on_the_engine_thread_with_the_same_text(tiny_model, monkeypatch):
    from rnnchat.engine.model import CharRNN

    texts, step_threads = [], set()
    real_step = CharRNN.step

    def step(self, x, state):
        step_threads.add(threading.current_thread())
        return real_step(self, x, state)

    monkeypatch.setattr(CharRNN, "step", step)
    for fast in ("1", "0"):
        monkeypatch.setenv("RNNCHAT_FAST", fast)
        s = ChatSession(str(tiny_model), autosave=False)
        s.load()
        s.update_params(seed=5, max_chars=50)
        assert s.engine.backend == ("numpy" if fast == "1" else "torch")
        step_threads.clear()
        texts.append(drain(s.send("Cat tree")))
        if fast == "0":
            assert len(step_threads) == 1 and next(iter(step_threads)).name.startswith("rnnchat-engine")
        s.close()
    assert texts[0] == texts[1]


def test_take_on_the_executor_thread_does_not_wait_for_a_read_queued_behind_it():
    feed = CountingFeed()
    executor = ThreadPoolExecutor(1)
    ra = ReadAhead(executor, on_executor=lambda: threading.current_thread().name.startswith("ThreadPool"))
    base = Snapshot("", None)

    def task():  # runs on the executor: the read it asks for can only queue behind it
        ra.request(base, "abc", feed.encode, feed.feed)
        return ra.take(base, feed.encode("abc!"))

    assert executor.submit(task).result(10) == (0, None, None)
    assert ra.wait_idle(10) and feed.calls == []  # the queued read found nothing left to do


def test_a_closed_session_says_so(tiny_model):
    s = ChatSession(str(tiny_model), autosave=False)
    s.load()
    s.close()
    s.read_ahead("Cat")  # quietly nothing: reading ahead is only a head start
    with pytest.raises(SessionError, match="closed"):
        drain(s.send("Cat"))
    with pytest.raises(SessionError, match="closed"):
        s.load()
