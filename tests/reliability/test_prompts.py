"""Any Unicode prompt is handled: emoji, NUL, control characters, right-to-left text, a 1 MB paste."""

import pytest

from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.generate import Engine
from rnnchat.params import SamplingParams
from tests.conftest import run_cli

NASTY = [
    "emoji 🙂👍🏽👨‍👩‍👧",
    "nul \x00 byte",
    "controls \x01\x07\x1b[31m\x7f\u200b\ufeff",
    "right-to-left \u202eعربي עברית\u202c",
    "combining e\u0301\u0301\u0301 and surrogates-free \U0010ffff",
    "",
    "\n\n\n",
]


@pytest.fixture
def engine(make_checkpoint):
    return Engine(load_checkpoint(make_checkpoint("gru")), "cpu")


@pytest.mark.parametrize("prompt", NASTY)
def test_engine_reads_any_unicode(engine, prompt):
    enc = engine.encode(prompt)
    ids = enc.ids or [engine.default_start()]
    logits, state = engine.feed(ids, engine.initial_state())
    out = "".join(t.char for t in engine.stream(logits, state, SamplingParams(seed=1, max_chars=10)))
    assert len(out) == 10
    assert all(ch in engine.vocab for ch in out)


def test_one_megabyte_paste(engine):
    prompt = ("ALICE:\nThe cat sat on the mat. 🙂\n\n" * 40000)[:1_000_000]
    enc = engine.encode(prompt)
    assert enc.dropped == "🙂"
    logits, state = engine.feed(enc.ids, engine.initial_state())
    assert logits.shape == (len(engine.vocab),)


@pytest.mark.parametrize("prompt", ["nul \x00 inside", "\u202eRTL", "🙂🙂"])
def test_cli_prompts_never_crash(make_checkpoint, prompt):
    path = make_checkpoint()
    r = run_cli("generate", "--model", str(path), "-n", "5", input=prompt)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == 5
