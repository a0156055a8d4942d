"""/alts on the session side: K alternatives from the exact state the last reply started from,
one picked in its place, the conversation continuing exactly from it. The real session over the
fake engine (whose state is the text read so far), then over the torch model at hidden 8."""

from __future__ import annotations

import threading

import pytest

from rnnchat.session import ChatSession, SessionError
from rnnchat.session.alternatives import AltChunk
from rnnchat.session.chat import reply_seed
from rnnchat.session.fake_engine import DEFAULT_REPLIES, FakeEngine


def drain(reply) -> str:
    return "".join(c.text for c in reply)


def written(alts) -> dict[int, str]:
    out: dict[int, str] = {}
    for chunk in alts:
        assert isinstance(chunk, AltChunk) and len(chunk.probs) == len(chunk.text)
        out[chunk.index] = out.get(chunk.index, "") + chunk.text
    return out


@pytest.fixture
def fake():
    s = ChatSession("fake", autosave=False, engine=FakeEngine.opener())
    s.load()
    yield s
    s.close()


def test_pick_replaces_the_last_reply_and_the_state_is_after_its_text(fake):
    drain(fake.send("Who?"))
    original = fake.turns[-1]
    alts = fake.alternatives(3)
    assert fake.busy
    streamed = written(alts)
    assert not fake.busy and fake.turns[-1] is original, "nothing changes before a pick"
    texts = [t.text for t in alts.choices]
    assert texts == [DEFAULT_REPLIES[1], DEFAULT_REPLIES[2], DEFAULT_REPLIES[0]]  # the fake's next scripts
    assert streamed == dict(enumerate(texts)) and all(t.reason == "stop" for t in alts.choices)
    assert [t.snapshot for t in alts.choices] == [original.snapshot] * 3, "all from the reply's start state"
    turn = alts.pick(1)
    assert fake.turns[-1] is turn and turn.text == DEFAULT_REPLIES[2] and turn.speaker == "MERCUTIO"
    assert len(fake.turns) == 2 and turn.fed == DEFAULT_REPLIES[2] + "\n\n"
    assert fake.current_state.state == fake.primer + fake.history_text(), "the state is after exactly the picked text"
    with pytest.raises(SessionError, match="already"):
        alts.pick(0)
    drain(fake.send("And then?"))  # the next turn goes on from the picked alternative's state
    assert fake.turns[2].snapshot.state == "\n\nYOU:\nWho?\n\n" + DEFAULT_REPLIES[2] + "\n\n"
    fake.rewind(2)  # rewind stays exact after a pick
    assert fake.current_state.state == fake.primer + fake.history_text() and fake.turns[-1] is turn
    drain(fake.regenerate())  # from the state the picked reply started from
    assert fake.turns[-1].snapshot is original.snapshot


def test_cancel_keeps_what_each_wrote_and_discard_keeps_the_original(fake):
    gate = threading.Event()
    drain(fake.send("Who?"))
    original = fake.turns[-1]
    fake.engine.gate, fake.engine.hold_after = gate, 5
    alts = fake.alternatives(2)
    with pytest.raises(SessionError, match="streaming"):
        fake.send("no")
    it = iter(alts)
    for _ in range(10):  # 5 characters of each
        next(it)
    fake.stop()  # Esc: stops them all
    rest = list(it)
    assert rest == [] and [t.reason for t in alts.choices] == ["cancelled"] * 2
    assert [t.text for t in alts.choices] == [DEFAULT_REPLIES[1][:5], DEFAULT_REPLIES[2][:5]]
    alts.discard()
    assert fake.turns[-1] is original and fake.current_state.state.endswith(original.text + "\n\n")
    with pytest.raises(SessionError, match="already"):
        alts.pick(0)
    # after a discard, new alternatives can be written and one kept
    fake.engine.gate = None
    alts = fake.alternatives(2)
    drain(alts)
    assert alts.pick(0).reason == "stop"


def test_bad_counts_and_nothing_to_write_for(fake):
    with pytest.raises(SessionError, match="send a message first"):
        fake.alternatives(3)
    drain(fake.send("Who?"))
    for bad in (1, 9, 0, "3", 2.5, True, None):
        with pytest.raises(SessionError, match="from 2 to 8"):
            fake.alternatives(bad)
    assert not fake.busy
    alts = fake.alternatives(2)
    drain(alts)
    with pytest.raises(SessionError, match="no alternative 5"):
        alts.pick(4)
    drain(fake.regenerate())  # the conversation moved on: these alternatives no longer fit
    with pytest.raises(SessionError, match="changed"):
        alts.pick(0)


def test_alternatives_for_a_rewound_reply_and_their_seeds(fake):
    fake.update_params(seed=40)
    drain(fake.send("One"))
    drain(fake.send("Two"))
    base = reply_seed(fake.params, index=1)  # the second reply's seed
    alts = fake.alternatives(3)
    assert alts.seeds == [base + 1, base + 2, base + 3]
    alts.discard()
    fake.rewind(3)  # just after "Two": its reply is pending
    alts = fake.alternatives(2)
    assert alts.seeds == [base + 1, base + 2]
    drain(alts)
    turn = alts.pick(1)
    assert fake.turns[-1] is turn and len(fake.turns) == 4 and turn.seed == base + 2
    assert fake.current_state.state == fake.primer + fake.history_text()


# ---- the torch model (hidden 8) --------------------------------------------------------------
NO_STOP = {"template": "BOB:\n{text}\n\n", "stop": ["QQQQ"]}  # never written: replies end at their length


def open_session(path, **params) -> ChatSession:
    s = ChatSession(str(path), autosave=False)
    s.load()
    s.engine.engine.set_prompt_precision("fp32")  # fed-at-once states compared in fp32
    s.update_params(**params)
    return s


def test_greedy_alternatives_all_equal_the_single_greedy_reply(make_checkpoint):
    s = open_session(make_checkpoint("lstm", chat=NO_STOP), temperature=0.0, max_chars=40)
    try:
        drain(s.send("Cat tree"))
        single = s.turns[-1]
        alts = s.alternatives(4)
        drain(alts)
        assert [t.text for t in alts.choices] == [single.text] * 4 and len(single.text) == 40
        assert [t.fed for t in alts.choices] == [single.fed] * 4
    finally:
        s.close()


def test_a_picked_alternative_continues_exactly(make_checkpoint):
    from tests.session.test_session import assert_state_close

    path = make_checkpoint("lstm", chat=NO_STOP)
    a = open_session(path, temperature=1.0, seed=7, max_chars=20)
    b = open_session(path)
    try:
        drain(a.send("Cat tree"))
        alts = a.alternatives(3)
        drain(alts)
        texts = [t.text for t in alts.choices]
        assert len(set(texts)) == 3, "each alternative has its own seed stream"
        picked = alts.pick(2)
        assert a.turns[-1] is picked and picked.reason == "length"
        engine = a.engine.engine
        _, fed = engine.feed(engine.encode(a.primer + a.history_text()).ids, engine.initial_state())
        assert_state_close(a.current_state, fed)  # the state after exactly the picked text
        # regenerate with its seed writes it again: one stream with that seed writes what the batched one did
        drain(a.regenerate(same_seed=True))
        assert a.turns[-1].text == picked.text and a.turns[-1].seed == picked.seed
        assert_state_close(a.current_state, alts._ends[2])
        # continue (greedy) goes on as a single stream from the directly-fed state does
        a.update_params(temperature=0.0, max_chars=12)
        logits, state = engine.feed(engine.encode(a.primer + a.history_text()).ids, engine.initial_state())
        expected = "".join(t.char for t in engine.stream(logits, state, a.params.replace(max_chars=12)))
        assert drain(a.continue_reply()) == expected
        # the next reply equals a session's that read the same text at once, with the same seed
        b.prime(a.primer + a.history_text())
        a.update_params(temperature=1.0, max_chars=20)
        b.update_params(temperature=1.0, max_chars=20, seed=reply_seed(a.params, index=1))
        before = a.current_state
        drain(a.send("Day night"))
        drain(b.send("Day night"))
        assert a.turns[-1].text == b.turns[-1].text and a.turns[-1].seed == b.turns[-1].seed
        a.rewind(2)  # rewind stays exact after a pick
        assert a.current_state is before
        a.rewind(1)
        assert a.current_state is picked.snapshot
    finally:
        a.close()
        b.close()
