"""Prompts are read in fixed-size chunks (rnnchat.engine.prompt): the same result as one fused
forward, with work and memory per call bounded by the chunk whatever the prompt's length."""

import unicodedata

import pytest
import torch

from rnnchat.engine import prompt
from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.generate import Engine
from rnnchat.core.params import SamplingParams
from tests.conftest import TINY_TEXT, needs_cpu_bf16

TEXT = TINY_TEXT.read_text(encoding="utf-8")


@pytest.fixture
def engines(make_checkpoint, one_torch_thread):
    """engines[cell]: a tiny (hidden 8) engine reading prompts in fp32."""

    class Lazy(dict):
        def __missing__(self, cell):
            self[cell] = Engine(load_checkpoint(make_checkpoint(cell, name=cell)), "cpu", prompt_precision="fp32")
            return self[cell]

    return Lazy()


class Spy:
    """Records the length of every chunk the model's embedding sees."""

    def __init__(self, engine):
        self.sizes: list[int] = []
        self.fed: list[int] = []
        self.handle = engine.model.embedding.register_forward_hook(self._hook)

    def _hook(self, module, args, out):
        self.sizes.append(args[0].shape[1])
        self.fed += args[0][0].tolist()

    def close(self):
        self.handle.remove()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_chunked_read_equals_one_fused_forward(engines, cell):
    engine = engines[cell]
    ids = engine.encode(TEXT[:1500]).ids
    start = engine.initial_state()
    with torch.inference_mode():
        ref_logits, ref_state = engine.model(torch.tensor([ids]), start)
    logits, state = engine.feed(ids, start, chunk=64)  # 24 chunks, the last one short
    torch.testing.assert_close(logits, ref_logits[0, -1], rtol=1e-5, atol=1e-5)
    for got, want in zip(_flat(state), _flat(ref_state)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [1, 15, 16, 17, 32, 47, 48, 49])
def test_every_id_is_read_once_in_order_and_no_call_exceeds_the_chunk(engines, n):
    engine = engines["lstm"]
    ids = (engine.encode(TEXT).ids * 2)[:n]
    spy = Spy(engine)
    try:
        engine.feed(ids, engine.initial_state(), chunk=16)
    finally:
        spy.close()
    assert spy.fed == ids
    assert spy.sizes == [16] * (n // 16) + ([n % 16] if n % 16 else [])


def test_a_cut_anywhere_gives_the_state_of_reading_both_halves_in_turn(engines):
    """The chunk boundary is exact: reading ``a`` then ``b`` in two calls is the chunked read of
    ``a + b`` cut after ``a``, bit for bit."""
    engine = engines["gru"]
    ids = engine.encode(TEXT[:40]).ids
    s = engine.initial_state()
    _, mid = engine.feed(ids[:16], s, chunk=16)
    logits_two, two = engine.feed(ids[16:], mid, chunk=16)
    logits_one, one = engine.feed(ids, s, chunk=16)
    assert torch.equal(logits_one, logits_two) and all(torch.equal(a, b) for a, b in zip(_flat(one), _flat(two)))


def test_a_long_prompt_is_bounded_by_the_chunk(engines):
    """100,000 ids with a 2,048 chunk: 49 calls, none longer than the chunk."""
    engine = engines["rnn"]
    ids = engine.encode(TEXT).ids
    ids = (ids * (100_000 // len(ids) + 1))[:100_000]
    spy = Spy(engine)
    try:
        logits, _ = engine.feed(ids, engine.initial_state(), chunk=2048)
    finally:
        spy.close()
    assert max(spy.sizes) == 2048 and len(spy.sizes) == 49 and sum(spy.sizes) == 100_000
    assert torch.isfinite(logits).all() and logits.shape == (len(engine.vocab),)


def test_feed_text_from_a_stream_equals_encoding_it_whole(engines):
    engine = engines["lstm"]
    text = ("e\u0301te\u0301 \u1100\u1161\u11a8 caf\u00e9 \u4e00\u4e8c " + TEXT[:50]) * 20
    reads = prompt.string_reads(text, 7)  # reads of 7 characters: most cuts fall inside a cluster
    logits, state, read = engine.feed_text(reads, engine.initial_state(), chunk=16)
    enc = engine.encode(text)
    want_logits, want_state = engine.feed(enc.ids, engine.initial_state(), chunk=16)
    assert read.ids == len(enc.ids) and read.dropped == enc.dropped and read.mapped == enc.mapped
    torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-5)
    for got, want in zip(_flat(state), _flat(want_state)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def _nfc_by_piece(pieces):
    return "".join(unicodedata.normalize("NFC", p) for p in pieces)


def test_text_pieces_normalise_like_the_whole_text():
    text = "abcde\u0301fg \u1100\u1161\u11a8\u4e00o\u0308" * 60
    naive = list(prompt.string_reads(text, 8))
    assert _nfc_by_piece(naive) != unicodedata.normalize("NFC", text)  # fixed cuts split clusters
    pieces = list(prompt.text_pieces(prompt.string_reads(text, 5), chunk=8))
    assert "".join(pieces) == text and max(map(len, pieces)) <= 8
    assert _nfc_by_piece(pieces) == unicodedata.normalize("NFC", text)


def test_a_run_with_no_stable_cut_is_cut_at_a_bound():
    text = "x" + "\u0301" * 1000
    pieces = list(prompt.text_pieces(prompt.string_reads(text, 5), chunk=8))
    assert "".join(pieces) == text and max(map(len, pieces)) <= prompt.MAX_PIECE * 8


def test_the_stable_ranges_never_combine_with_what_precedes_them():
    seconds = set()
    for c in range(0x110000):
        d = unicodedata.decomposition(chr(c))
        if d and not d.startswith("<") and len(d.split()) == 2:
            seconds.add(int(d.split()[1], 16))
    for c in [*range(0x300), *range(0x4E00, 0xA000)]:
        ch = chr(c)
        assert prompt.is_stable(ch)
        assert unicodedata.combining(ch) == 0 and unicodedata.normalize("NFC", ch) == ch and c not in seconds
    assert not prompt.is_stable("\u0301") and not prompt.is_stable("\u1161")


@needs_cpu_bf16("lstm")
def test_bf16_reading_in_chunks_keeps_fp32_state(engines):
    engine = engines["lstm"]
    ids = engine.encode(TEXT[:600]).ids
    engine.set_prompt_precision("bf16")
    try:
        logits, state = engine.feed(ids, engine.initial_state(), chunk=128)
    finally:
        engine.set_prompt_precision("fp32")
    ref_logits, ref_state = engine.feed(ids, engine.initial_state())
    assert logits.dtype == torch.float32 and all(t.dtype == torch.float32 for t in _flat(state))
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=0.1)
    text = "".join(t.char for t in engine.stream(logits, state, SamplingParams(seed=1, max_chars=8)))
    assert len(text) == 8


def _flat(state):
    out = []
    for s in state:
        out += list(s) if isinstance(s, (tuple, list)) else [s]
    return out
