"""A prompt shorter than generate.SHORT_PROMPT is read one character at a time on the
per-character path (torch's fused LSTM call costs milliseconds before its first character)."""

from __future__ import annotations

import torch

from rnnchat.engine import generate
from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.generate import Engine
from rnnchat.engine.prompt import read_ids


def test_a_short_prompt_is_read_stepwise_and_matches_the_fused_read(make_checkpoint, monkeypatch):
    engine = Engine(load_checkpoint(make_checkpoint("lstm")), "cpu", weights="fp32")
    calls = []
    engine.model.embedding.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[1]))
    ids = engine.encode("hello").ids
    logits, state = engine.feed(ids, engine.initial_state())
    assert calls == []  # no fused forward
    with torch.inference_mode():
        ref_logits, ref_state = read_ids(engine.model, ids, engine.initial_state())
    assert torch.allclose(logits, ref_logits, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for s, r in zip(state, ref_state) for a, b in zip(s, r))
    long_ids = engine.encode("hello world, a longer prompt").ids
    assert len(long_ids) >= generate.SHORT_PROMPT["fp32"]
    calls.clear()  # (the reference read above was fused)
    engine.feed(long_ids, engine.initial_state())
    assert calls == [len(long_ids)]  # at the threshold and past it: the fused read


def test_an_int8_short_prompt_is_read_with_the_generation_weights(make_checkpoint):
    engine = Engine(load_checkpoint(make_checkpoint("lstm", hidden=128, embedding=8)), "cpu", weights="int8")
    ids = engine.encode("hello").ids
    logits, state = engine.feed(ids, engine.initial_state())
    from rnnchat.engine.batched import BatchedModel

    bm = BatchedModel(engine.packed_weights("int8"))  # the batched path stepped by hand: the same bits
    bm.add(engine.initial_state())
    for i in ids:
        out = bm.step([i])
    assert torch.equal(logits, torch.from_numpy(out[0].copy()))
    again, _ = engine.feed(ids, engine.initial_state())
    assert torch.equal(logits, again)


def test_a_third_party_cell_keeps_the_fused_read(make_checkpoint, monkeypatch):
    engine = Engine(load_checkpoint(make_checkpoint("lstm")), "cpu", weights="fp32", fast=False)
    calls = []
    engine.model.embedding.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[1]))
    engine.feed(engine.encode("hi").ids, engine.initial_state())
    assert calls == [2]  # no per-character NumPy path (the reference path): torch reads it


def test_reading_a_short_prompt_does_not_time_or_change_the_thread_count(make_checkpoint, monkeypatch):
    from rnnchat.engine import blas_choice

    def no_probe(*a, **kw):
        raise AssertionError("a prompt read timed the thread count")

    monkeypatch.setattr(blas_choice.ThreadChoice, "probe", no_probe)
    for weights in ("fp32", "int8"):
        engine = Engine(load_checkpoint(make_checkpoint("lstm", hidden=128, embedding=8)), "cpu", weights=weights)
        engine.feed(engine.encode("hello").ids, engine.initial_state())


def test_text_read_in_pieces_takes_the_same_short_path(make_checkpoint):
    from rnnchat.engine.prompt import string_reads

    engine = Engine(load_checkpoint(make_checkpoint("lstm", hidden=128, embedding=8)), "cpu", weights="int8")
    logits, _ = engine.feed(engine.encode("hello").ids, engine.initial_state())
    pieces, _, read = engine.feed_text(string_reads("hello", engine.chunk), engine.initial_state())
    assert torch.equal(pieces, logits) and read.ids == 5  # `rnnchat generate`'s read: the same bits
    calls = []
    engine.model.embedding.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[1]))
    engine.feed_text(string_reads("hello", 4), engine.initial_state(), chunk=4)
    assert calls == [4, 1]  # a chunk given: torch's fused read of each chunk, as before
