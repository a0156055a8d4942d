"""Any Unicode prompt is handled: emoji, NUL, control characters, right-to-left text, a 1 MB paste."""

import os

import pytest

from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.generate import Engine
from rnnchat.core.params import SamplingParams
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


def test_one_megabyte_paste(make_checkpoint):
    # an LSTM: oneDNN reads it at a few microseconds a character; PyTorch's own GRU loop took 25 s of CPU here
    engine = Engine(load_checkpoint(make_checkpoint("lstm")), "cpu")
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


# ---- principle 3: bounded work for any prompt length (issue 15) ---------------------------------------

RSS_SCRIPT = r"""
import resource, sys
from rnnchat.cli import _run

model, big = sys.argv[1], sys.argv[2]
assert _run(["generate", "-m", model, "-n", "3", "--seed", "1", "warm up"]) == 0  # torch, the model, kernels
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sys.stdin = open(big, encoding="utf-8")
code = _run(["generate", "-m", model, "-n", "5", "--seed", "1", "--stats"])
print(f"\ngrowth-kib {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}", file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.slow  # a real process or a training run: 4-6 s
def test_generate_reads_1_2_million_characters_of_stdin_in_bounded_memory(make_checkpoint, tmp_path):
    """1.2 M characters on stdin (1.1 M once ended in a oneDNN traceback with the bundled model,
    2.1 M asked for 34 GB): read a chunk at a time, the peak RSS grows by less than 64 MB
    (one fused forward over it took 231 MB more even with this hidden-8 model)."""
    import subprocess
    import sys

    big = tmp_path / "big.txt"
    big.write_text(("ALICE:\nThe cat sat on the mat.\n\n" * 45_000)[:1_200_000], encoding="utf-8")
    r = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(make_checkpoint()), str(big)],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, RNNCHAT_THREADS="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "(1200000-char prompt" in r.stderr
    growth = int(r.stderr.rsplit("growth-kib ", 1)[1])
    assert growth < 64 * 1024, f"peak RSS grew by {growth // 1024} MB"


def test_a_long_paste_read_ahead_in_the_chat_session_is_read_in_chunks(make_checkpoint, monkeypatch):
    """The app's read-ahead of a paste (5 MB once asked for 83 GB in one forward) and the send
    after it never hand the model more than one chunk; the reply comes from the whole paste."""
    from rnnchat.session import ChatSession

    monkeypatch.setenv("RNNCHAT_THREADS", "1")  # a tiny model: one thread is fastest, and steady under load
    s = ChatSession(str(make_checkpoint(chat={"template": "A: {text}\nB:", "stop": ["\n"]})), autosave=False)
    s.load()
    s.update_params(max_chars=20)
    sizes = []
    s.engine.engine.model.embedding.register_forward_hook(lambda m, args, out: sizes.append(args[0].shape[1]))
    paste = ("the cat sat on the mat " * 9000)[:200_000]
    s.read_ahead(paste)
    assert s.read_ahead_done(120)
    reply = s.send(paste)
    text = "".join(c.text for c in reply)
    assert reply.read_ahead == len("A: ") + len(paste)
    # (the template's 3-character tail is read one character at a time: generate.SHORT_PROMPT)
    assert max(sizes) <= 4096 and sum(sizes) == len("A: ") + len(paste)
    assert reply.turn.reason in ("stop", "length") and isinstance(text, str)


@pytest.mark.parametrize("stop", ["\\x", "C:\\Users\\", "\\u12", "trailing\\"])
def test_a_malformed_stop_escape_is_one_line(make_checkpoint, stop):
    r = run_cli("generate", "--model", str(make_checkpoint()), "-n", "5", "--stop", stop, input="hi")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "invalid backslash escape" in r.stderr and "write \\\\ for a backslash" in r.stderr


def test_stop_escapes_are_characters_and_a_doubled_backslash_is_one():
    from rnnchat.core.units import unescape

    assert unescape("\\n\\n") == "\n\n" and unescape("C:\\\\Users\\\\") == "C:\\Users\\"
    assert unescape("\u8bd7\\t\\x41") == "\u8bd7\tA" and unescape("no escapes") == "no escapes"
