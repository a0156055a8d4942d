"""ChatSession with a tiny real model: state across turns, regenerate, live sampling, stop, rewind, reset."""

from __future__ import annotations

import pytest
import torch

from rnnchat.core.errors import ModelNotFound
from rnnchat.session import ChatSession, SessionBusy, SessionError
from rnnchat.engine.states import StateError, state_from_bytes, state_to_bytes

CHAT = {"template": "BOB:\n{text}\n\n", "stop": ["\n\n"]}


def drain(reply) -> str:
    return "".join(c.text for c in reply)


def assert_state_close(a, b, exact=False):
    a, b = getattr(a, "state", a), getattr(b, "state", b)  # a session's state handle, or a state
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b) if exact else torch.allclose(a, b, atol=1e-5), (a, b)
        return
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert_state_close(x, y, exact)


def test_state_across_turns_equals_feeding_the_whole_history(session):
    session.update_params(seed=1)
    for text in ("Cat tree", "Day night?", "Sea dog"):
        drain(session.send(text))
    history = session.history_text()
    assert history.startswith("BOB:\nCat tree\n\n")
    engine = session.engine.engine  # the torch Engine behind the session's ChatEngine
    engine.set_prompt_precision("fp32")  # the turns were short: read in fp32
    # a conversation starts from the state after the primer (the stop sequence), not zeros
    assert session.primer == "\n\n"
    _, whole = engine.feed(engine.encode(session.primer + history).ids, engine.initial_state())
    assert_state_close(session.current_state, whole)


def test_model_turn_keeps_stop_sequence_in_fed_not_in_text(make_checkpoint):
    # a stop sequence the untrained model produces at once: every reply ends by "stop"
    path = make_checkpoint("gru", chat={"template": "{text}", "stop": ["a"]})
    s = ChatSession(str(path))
    s.load()
    s.update_params(max_chars=500)
    s.update_params(seed=0)
    text = drain(s.send("Cat"))
    turn = s.turns[-1]
    assert turn.reason == "stop" and turn.text == text and "a" not in text
    assert turn.fed == text + "a"


def test_regenerate_with_same_seed_reproduces_the_turn(session):
    session.update_params(seed=42)
    drain(session.send("Cat tree"))
    first = session.turns[-1]
    again = drain(session.regenerate())
    assert again == first.text and session.turns[-1].seed == first.seed
    assert len(session.turns) == 2
    session.update_params(seed=None)
    other = session.regenerate(same_seed=True)
    assert drain(other) == first.text and other.seed == first.seed


def test_regenerate_without_seed_starts_from_the_same_state(session):
    drain(session.send("Cat tree"))
    before = session.turns[-1].snapshot
    reply = session.regenerate()
    drain(reply)
    assert session.turns[-1].snapshot is before
    assert session.history_text().count("Cat tree") == 1


def test_temperature_change_mid_reply_applies_from_the_next_character(make_checkpoint, monkeypatch):
    from rnnchat.engine.chat import RecordingSampler

    path = make_checkpoint("lstm", chat={"template": "{text}", "stop": []})  # no held-back characters
    s = ChatSession(str(path))
    s.load()
    s.update_params(seed=5, temperature=5.0, max_chars=40)
    k = 10
    real_accept = RecordingSampler.accept

    def accept(self, i):  # the engine thread has drawn its k-th character: change the values now
        real_accept(self, i)
        if len(self.chosen) == k:
            s.update_params(temperature=0.0)  # greedy from the next character on

    monkeypatch.setattr(RecordingSampler, "accept", accept)
    chars = [chunk.text for chunk in s.send("Cat")]
    monkeypatch.setattr(RecordingSampler, "accept", real_accept)
    turn = s.turns[-1]
    engine = s.engine.engine
    # replay: the first k characters match a hot reply with the same seed, the rest are argmax
    logits, state = turn.snapshot.logits, turn.snapshot.state
    ids = engine.encode("".join(chars)).ids
    greedy_from = None
    for i, idx in enumerate(ids):
        if i >= k:
            assert idx == int(torch.argmax(logits)), f"character {i} was not greedy"
        elif idx != int(torch.argmax(logits)):
            greedy_from = i
        logits, state = engine.step(idx, state)
    assert greedy_from is not None, "the hot part should not all be greedy"
    s.update_params(temperature=5.0)
    hot = drain(s.regenerate(same_seed=True))
    assert hot[:k] == "".join(chars[:k]) and hot != "".join(chars)


def test_stop_keeps_what_was_produced_and_closes_the_turn_next_time(session):
    # seed 42: this reply runs the full 500 characters without reaching its stop sequence, so only
    # the stop can end it (a random seed sometimes wrote "\n\n" within the first 30 characters)
    session.update_params(max_chars=500, seed=42)
    reply = session.send("Cat tree")
    got = []
    for chunk in reply:
        got.append(chunk.text)
        if len(got) == 5:
            session.stop()
    turn = session.turns[-1]
    assert turn.stopped and turn.reason == "cancelled"
    assert turn.text == "".join(got) and len(got) >= 5
    assert not session.busy
    drain(session.send("Day"))
    assert session.turns[2].fed.startswith("\n\nBOB:\nDay")


def test_busy_and_not_loaded_errors(tiny_model):
    s = ChatSession(str(tiny_model))
    with pytest.raises(SessionError, match="not loaded"):
        s.send("hi")
    s.load()
    with pytest.raises(SessionError, match="type something"):
        s.send("   ")
    reply = s.send("Cat")
    with pytest.raises(SessionBusy):
        s.send("again")
    with pytest.raises(SessionBusy):
        s.reset()
    drain(reply)
    with pytest.raises(SessionError, match="no turn 9"):
        s.rewind(9)


def test_unknown_characters_are_reported(session):
    reply = session.send("Cat ☃ tree")
    drain(reply)
    assert any("☃" in n for n in reply.notes)


def test_rewind_and_reset_are_exact(session):
    session.update_params(seed=3)
    drain(session.send("Cat tree"))
    after_first = session.current_state
    drain(session.send("Day night"))
    session.rewind(2)
    assert len(session.turns) == 2
    assert_state_close(session.current_state, after_first, exact=True)
    # rewinding to a model turn leaves its user turn pending a reply
    session.rewind(1)
    assert [t.role for t in session.turns] == ["user"]
    drain(session.regenerate())
    assert [t.role for t in session.turns] == ["user", "model"]
    session.reset()
    assert session.turns == [] and session.conversation_id is None
    engine = session.engine.engine
    _, primed = engine.feed(engine.encode(session.primer).ids, engine.initial_state())
    assert_state_close(session.current_state, primed)


def test_error_mid_reply_undoes_the_exchange(session, monkeypatch):
    from rnnchat.engine.chat import RecordingSampler

    drain(session.send("Cat"))
    before = session.current_state

    def broken(self, i):
        if len(self.chosen) == 3:
            raise SessionError("boom")
        self.chosen.append(i)

    monkeypatch.setattr(RecordingSampler, "accept", broken)
    with pytest.raises(SessionError, match="boom"):
        drain(session.send("Day"))
    assert len(session.turns) == 2 and not session.busy
    assert session.current_state is before


def test_conversation_saved_and_reopened_continues_exactly(tiny_model):
    a = ChatSession(str(tiny_model))
    a.load()
    a.update_params(seed=9, max_chars=50, temperature=1.3)
    drain(a.send("Cat tree"))
    drain(a.send("Sea"))
    conv_id = a.conversation_id
    assert conv_id is not None
    continued = drain(a.send("Light"))

    b = ChatSession(str(tiny_model))
    b.load()
    b.open_conversation(conv_id)
    assert b.params.temperature == 1.3 and b.params.seed == 9
    assert [t.text for t in b.turns] == [t.text for t in a.turns]  # autosave kept the third exchange
    b.rewind(4)
    assert_state_close(b.current_state, a.turns[4].snapshot.state, exact=True)
    assert drain(b.send("Light")) == continued
    summaries = b.store.list()
    assert summaries[0].id == conv_id and summaries[0].title == "Cat tree" and summaries[0].turns == 6


def test_reopen_refuses_a_model_of_another_shape(tiny_model, make_checkpoint):
    a = ChatSession(str(tiny_model))
    a.load()
    drain(a.send("Cat"))
    other = ChatSession(str(make_checkpoint("gru", name="other", chat=CHAT)))
    other.load()
    with pytest.raises(SessionError, match="open that model first"):
        other.open_conversation(a.conversation_id)


def test_export_markdown(session, tmp_path):
    session.update_params(seed=1)
    drain(session.send("Cat tree"))
    path = session.export_markdown(tmp_path / "chat.md")
    text = path.read_text(encoding="utf-8")
    assert "### You\n\nCat tree" in text and "lstm" in text
    with pytest.raises(SessionError, match="empty"):
        session.reset() or session.export_markdown(tmp_path / "x.md")


def test_missing_model_and_fallback(tiny_model, rnnchat_home):
    with pytest.raises(ModelNotFound):
        ChatSession("nope").load()
    models = rnnchat_home / "data" / "models"
    models.mkdir(parents=True)
    (models / "mine.safetensors").write_bytes(tiny_model.read_bytes())
    from rnnchat.plugins import manager

    manager._HOST = None
    s = ChatSession("nope", fallback=True)
    info = s.load()
    default = "shakespeare" if "shakespeare" in manager.get_host().checkpoints else "mine"
    assert info.name == default and "not found" in info.note


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_state_bytes_round_trip(make_checkpoint, cell):
    s = ChatSession(str(make_checkpoint(cell, chat=CHAT)))
    s.load()
    drain(s.send("Cat"))
    state, logits = state_from_bytes(state_to_bytes(s.current_state.state, s.current_state.logits), "cpu")
    assert_state_close(state, s.current_state, exact=True)
    assert torch.equal(logits, s.current_state.logits)
    with pytest.raises(StateError, match="corrupt"):
        state_from_bytes(b"not safetensors", "cpu")
