"""/state save and /state load: the conversation's state and its text as a safetensors file in the
data directory, checked like a checkpoint when loaded; a reply after load is the reply after the
original prime (same seed)."""

from __future__ import annotations

import json
import os

import pytest

from rnnchat.session import ChatSession, SessionError
from rnnchat.session import state_files
from rnnchat.session.fake_engine import FakeEngine
from rnnchat.store.st_bytes import split, with_metadata

PRIME = "BOB:\nGood morrow, cousin.\n\n"


def drain(reply) -> str:
    return "".join(c.text for c in reply)


def same_tensors(a: bytes, b: bytes) -> bool:
    """Two states' safetensors bytes hold the same tensors (the header's layout may differ)."""
    import torch
    from safetensors.torch import load as st_load

    x, y = st_load(a), st_load(b)
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def opened(path) -> ChatSession:
    s = ChatSession(str(path), autosave=False)
    s.load()
    s.update_params(max_chars=40, seed=7, temperature=1.0)
    return s


def test_reply_after_load_is_the_reply_after_the_prime(tiny_model, make_checkpoint):
    a = opened(tiny_model)
    a.prime(PRIME)
    primed = a.primer  # PRIME as the tiny model reads it (characters it does not know left out)
    path = a.save_state("morrow")
    assert path == state_files.states_dir() / "morrow.safetensors" and path.is_file()
    first = drain(a.send("Who is there?"))
    after_first = a.current_state.blob
    a.save_state("later")  # after a transcript: the state now and every character read
    b = opened(tiny_model)
    saved = b.load_state("morrow")
    assert saved.text == primed == b.primer and saved.model == "tiny" and b.turns == []
    assert drain(b.send("Who is there?")) == first and b.current_state.blob == after_first
    later = b.load_state("later")
    assert later.text == primed + a.history_text() and same_tensors(b.current_state.blob, a.current_state.blob)
    b.reset()  # /reset comes back to the loaded state
    assert same_tensors(b.current_state.blob, a.current_state.blob)
    found, broken = state_files.list_states()
    assert {s.name for s in found} == {"morrow", "later"} and broken == []

    other = opened(make_checkpoint("gru", name="other"))
    with pytest.raises(SessionError, match=r"^this state belongs to model tiny \(lstm 2x8\); load tiny first"):
        other.load_state("morrow")
    # the same model's tensors with another dtype: refused by the engine's check, one line
    import torch
    from safetensors.torch import load as st_load, save as st_save

    data = path.read_bytes()
    meta, _, _ = split(data)
    half = st_save({k: v.to(torch.float16) for k, v in st_load(data).items()})
    path.write_bytes(with_metadata(half, meta))
    with pytest.raises(SessionError, match="does not fit this model") as err:
        a.load_state("morrow")
    assert "\n" not in str(err.value)
    for s in (a, b, other):
        s.close()


@pytest.fixture
def fake():
    s = ChatSession("fake", autosave=False, engine=FakeEngine.opener())
    s.load()
    yield s
    s.close()


@pytest.mark.parametrize("name", ["", "../up", "a/b", ".hidden", "x" * 65, "a b", "é"])
def test_a_bad_name_is_one_line(fake, name):
    with pytest.raises(SessionError, match="a state name is 1 to 64 letters"):
        fake.save_state(name)
    assert not state_files.states_dir().exists()


def test_hostile_state_files_are_refused_with_one_line(fake):
    folder = state_files.states_dir()
    folder.mkdir(parents=True)
    good = fake.save_state("good").read_bytes()
    meta = json.loads(split(good)[0]["rnnchat_state"])
    os.mkfifo(folder / "fifo.safetensors")
    (folder / "junk.safetensors").write_bytes(b"\x80\x04junk and more junk")
    (folder / "bare.safetensors").write_bytes(with_metadata(good, {}))
    (folder / "bent.safetensors").write_bytes(with_metadata(good, {"rnnchat_state": json.dumps({**meta, "layers": -1})}))
    (folder / "long.safetensors").write_bytes(good[:8] + good[8:-3])
    cases = {"missing": "there is no saved state 'missing' \\(saved states: bare, bent, fifo, good, junk, long\\)",
             "fifo": "not a regular file", "junk": "not a valid safetensors file",
             "bare": "not an rnnchat state", "bent": "field 'layers' is missing or out of range",
             "long": "truncated or corrupt"}
    for name, why in cases.items():
        with pytest.raises(SessionError, match=why) as err:
            fake.load_state(name)
        assert "\n" not in str(err.value)
    assert fake.current_state.state == "\n\n"  # nothing was loaded
    found, broken = state_files.list_states()
    assert [s.name for s in found] == ["good"] and sorted(n for n, _ in broken) == ["bare", "bent", "fifo", "junk", "long"]
    assert sorted(p.name for p in folder.iterdir() if "rnnchat-tmp" in p.name) == []
