"""Generation: prompt in one forward, then steps; stop sequences; live parameters."""

import threading

import pytest
import torch

from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.generate import Engine, _longest_partial
from rnnchat.core.params import LiveParams, SamplingParams


@pytest.fixture
def engine(make_checkpoint):
    return Engine(load_checkpoint(make_checkpoint("lstm")), "cpu")


def text_of(stream):
    return "".join(t.char for t in stream)


def test_prompt_forward_equals_stepping(engine):
    ids = engine.encode("ALICE:\nThe cat").ids
    logits, state = engine.feed(ids, engine.initial_state())
    s = engine.initial_state()
    for i in ids:
        step_logits, s = engine.step(i, s)
    torch.testing.assert_close(logits, step_logits, rtol=1e-5, atol=1e-5)


def test_seed_reproduces_output(engine):
    ids = engine.encode("BOB:\n").ids
    outs = []
    for _ in range(2):
        logits, state = engine.feed(ids, engine.initial_state())
        outs.append(text_of(engine.stream(logits, state, SamplingParams(temperature=1.0, seed=42, max_chars=80))))
    assert outs[0] == outs[1] and len(outs[0]) == 80


def test_max_chars_and_reason(engine):
    logits, state = engine.feed([0], engine.initial_state())
    stream = engine.stream(logits, state, SamplingParams(seed=1, max_chars=17))
    assert len(text_of(stream)) == 17 and stream.reason == "length"


def test_stop_sequence_is_not_emitted(engine):
    stops = (" ",)
    logits, state = engine.feed([1, 2], engine.initial_state())
    stream = engine.stream(logits, state, SamplingParams(temperature=1.0, seed=3, max_chars=500, stop=stops))
    out = text_of(stream)
    assert " " not in out
    assert stream.reason == "stop"


def test_partial_stop_prefix_is_held_back():
    assert _longest_partial("abc\n", ("\n\n",)) == 1
    assert _longest_partial("abc", ("\n\n",)) == 0
    assert _longest_partial("xEN", ("END",)) == 2


def test_state_after_stream_includes_generated_chars(engine):
    ids = engine.encode("CAROL:\n").ids
    logits, state = engine.feed(ids, engine.initial_state())
    stream = engine.stream(logits, state, SamplingParams(temperature=1.0, seed=9, max_chars=30))
    out = text_of(stream)
    whole, _ = engine.feed(ids + engine.encode(out).ids, engine.initial_state())
    # the stream's state has read every generated character: its next logits equal a fresh read
    torch.testing.assert_close(stream.logits, whole, rtol=1e-4, atol=1e-5)


def test_temperature_change_applies_to_next_character(engine):
    live = LiveParams(SamplingParams(temperature=1.5, seed=0, max_chars=60))
    logits, state = engine.feed([0], engine.initial_state())
    seen = []
    stream = engine.stream(logits, state, live)
    real = stream.sampler

    class Spy:  # the stream hands each character's values to its sampler, read once
        params = real.params

        def __call__(self, lg):
            seen.append(self.params.temperature)
            real.params = self.params
            return real(lg)

    stream.sampler = Spy()
    for i, _ in enumerate(stream):
        if i == 9:
            live.update(temperature=0.0)  # replaced whole, from the reader's side
    assert seen[:10] == [1.5] * 10 and set(seen[10:]) == {0.0}


def test_cancel_stops_stream(engine):
    cancel = threading.Event()
    logits, state = engine.feed([0], engine.initial_state())
    stream = engine.stream(logits, state, SamplingParams(max_chars=1000, seed=1), cancel=cancel)
    out = []
    for tok in stream:
        out.append(tok)
        if len(out) == 5:
            cancel.set()
    assert len(out) == 5 and stream.reason == "cancelled"


def test_unknown_prompt_characters_are_dropped_and_reported(engine):
    enc = engine.encode("ALICE 🙂 says 你好")
    assert enc.dropped == "🙂你好"
    assert engine.vocab.decode(enc.ids) == "ALICE  says "


def test_the_shared_rare_character_token_is_never_written(make_checkpoint):
    from rnnchat.core.vocab import UNK

    loaded = load_checkpoint(make_checkpoint(vocab=list("ab \n") + [UNK]))
    unk = loaded.vocab.unk
    with torch.no_grad():
        loaded.model.head.bias[unk] = 50.0  # the model all but certain of it at every step
    eng = Engine(loaded, "cpu")
    for temperature in (0.0, 1.0):
        logits, state = eng.feed(eng.encode("ab").ids, eng.initial_state())
        text = text_of(eng.stream(logits, state, SamplingParams(temperature=temperature, seed=3, max_chars=40)))
        assert len(text) == 40 and UNK not in text


@pytest.mark.parametrize("weights", ["fp32", "int8"])
def test_a_script_that_stops_reading_a_stream_exits_cleanly(make_checkpoint, weights):
    """An unfinished stream left to the interpreter's exit: its generator was closed during the
    teardown, exported its state with torch half gone, and the process aborted (exit 134, a C++
    trace on stderr); such streams are closed at exit, before the teardown."""
    import subprocess
    import sys

    path = make_checkpoint(hidden=128, embedding=8)
    code = ("from rnnchat.engine.checkpoint import load_checkpoint\n"
            "from rnnchat.engine.generate import Engine\n"
            "from rnnchat.core.params import SamplingParams\n"
            f"engine = Engine(load_checkpoint({str(path)!r}), 'cpu', weights={weights!r})\n"
            "logits, state = engine.feed(engine.encode('ab').ids, engine.initial_state())\n"
            "run = engine.stream(logits, state, SamplingParams(temperature=0.8, seed=1, max_chars=1000))\n"
            "it = iter(run)\n"
            "print(len([next(it).char for _ in range(5)]))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout.strip(), r.stderr) == (0, "5", "")
