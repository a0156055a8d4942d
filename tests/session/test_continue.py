"""Continue: the last reply goes on from the exact state where it stopped (Esc or the length
limit); regenerate and rewind stay exact after a continue. The real session over the fake engine
(whose state is the text read so far), and once over the torch model at hidden 8."""

from __future__ import annotations

import pytest

from rnnchat.session import ChatSession, SessionError
from rnnchat.session.fake_engine import FakeEngine

SCRIPT = "ROMEO:\nBut soft, what light through yonder window breaks?"


def drain(reply) -> str:
    return "".join(c.text for c in reply)


@pytest.fixture
def fake(tmp_path):
    made = []

    def replies(state: str, count: int) -> str:  # go on from what the reply already wrote
        return SCRIPT[len(state) - state.rfind("\n\n") - 2:]

    s = ChatSession("fake", autosave=False, engine=FakeEngine.opener(made=made, replies=replies))
    s.load()
    yield s
    s.close()


def test_continue_after_the_length_limit_goes_on_from_the_end_state(fake):
    fake.update_params(max_chars=10)
    drain(fake.send("Who?"))
    first = fake.turns[-1]
    assert first.reason == "length" and first.text == SCRIPT[:10]
    end = fake.current_state.state
    assert end == "\n\nYOU:\nWho?\n\n" + SCRIPT[:10]  # from the primed start (the stop sequence)
    fake.update_params(max_chars=500)
    more = drain(fake.continue_reply())
    assert len(fake.turns) == 2, "the continuation joins the reply, no new turn"
    t = fake.turns[-1]
    assert t.text == first.text == SCRIPT and more == SCRIPT[10:] and t.reason == "stop"
    assert len(t.probs) == len(SCRIPT)
    assert fake.engine.generations[-1].produced == list(SCRIPT[10:])
    assert fake.current_state.state == "\n\nYOU:\nWho?\n\n" + SCRIPT + "\n\n"
    assert fake.primer + fake.history_text() == fake.current_state.state, "every character fed is in the turns"
    # regenerate starts from the state the reply started from, not from the continuation's
    drain(fake.regenerate())
    assert fake.current_state.state.startswith("\n\nYOU:\nWho?\n\n") and len(fake.turns) == 2
    fake.rewind(0)
    assert fake.current_state.state == "\n\n" and fake.turns == []


def test_continue_after_stop_and_errors(fake):
    with pytest.raises(SessionError, match="no reply"):
        fake.continue_reply()
    drain(fake.send("Who?"))
    with pytest.raises(SessionError, match="stop sequence"):
        fake.continue_reply()
    fake.update_params(max_chars=5)
    drain(fake.send("Again"))
    base = fake.turns[-1].snapshot
    drain(fake.continue_reply())
    assert fake.turns[-1].snapshot is base, "the reply keeps the state it started from"
    fake.rewind(3)  # back to the reply's start: exact
    assert fake.current_state is base


def test_continue_with_the_real_engine_equals_one_long_reply(make_checkpoint):
    s = ChatSession(str(make_checkpoint("lstm", chat={"template": "BOB:\n{text}\n\n", "stop": ["QQQQ"]})))
    s.load()
    try:
        s.update_params(max_chars=8, seed=5, temperature=0.0)  # greedy: the continuation is determined
        drain(s.send("Cat tree"))
        head = s.turns[-1].text
        assert s.turns[-1].reason == "length"
        s.update_params(max_chars=16)
        drain(s.continue_reply())
        joined = s.turns[-1].text
        # one greedy reply of the same total length gives the same characters
        s.update_params(max_chars=8 + 16)
        drain(s.regenerate())
        assert joined.startswith(head) and len(joined) == 8 + 16
        assert s.turns[-1].text == joined
        engine = s.engine.engine
        engine.set_prompt_precision("fp32")
        _, whole = engine.feed(engine.encode(s.primer + s.history_text()).ids, engine.initial_state())
        from tests.session.test_session import assert_state_close

        assert_state_close(s.current_state, whole)
    finally:
        s.close()
