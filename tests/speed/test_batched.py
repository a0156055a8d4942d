"""K streams in one batched step: deterministic for a seed, greedy streams write what a single
stream writes, streams join and leave between steps, an alternative's state continues exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.generate import Engine
from rnnchat.engine.multi import BatchedStreams, alternatives
from rnnchat.core.params import SamplingParams

from tests.conftest import run_cli
from tests.speed.test_fast_path import PROMPT, flat, run




def engine_for(make_checkpoint, cell="lstm", weights="fp32", **kw):
    return Engine(load_checkpoint(make_checkpoint(cell, **kw)), "cpu", weights=weights)


def start(engine, text=PROMPT):
    return engine.feed(engine.encode(text).ids, engine.initial_state())


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("weights", ["fp32", "int8"])
def test_greedy_streams_write_what_a_single_stream_writes(make_checkpoint, cell, weights):
    engine = engine_for(make_checkpoint, cell, weights)
    params = SamplingParams(temperature=0, max_chars=200)
    single, _ = run(engine, params)
    alts = alternatives(engine, *start(engine), params, 5)
    assert [a.text for a in alts] == [single] * 5


@pytest.mark.parametrize("weights", ["fp32", "bf16", "int8"])
def test_samples_are_the_same_for_a_seed_and_sample_j_uses_seed_plus_j(make_checkpoint, weights):
    engine = engine_for(make_checkpoint, "lstm", weights)
    params = SamplingParams(temperature=1.0, top_p=0.9, seed=21, max_chars=120)
    a = alternatives(engine, *start(engine), params, 4)
    b = alternatives(engine, *start(engine), params, 4)
    assert [x.text for x in a] == [x.text for x in b]
    assert [x.seed for x in a] == [21, 22, 23, 24] and len({x.text for x in a}) == 4
    for j in (0, 3):  # each sample is what the single stream writes with its seed
        params_j = SamplingParams(temperature=1.0, top_p=0.9, seed=21 + j, max_chars=120)
        assert run(engine, params_j)[0] == a[j].text


def test_picked_alternative_continues_exactly(make_checkpoint):
    engine = engine_for(make_checkpoint, "lstm")
    params = SamplingParams(temperature=1.0, seed=5, max_chars=80, stop=("e ",))
    alts = alternatives(engine, *start(engine), params, 3)
    assert any(a.reason == "stop" for a in alts) or all(a.reason == "length" for a in alts)
    for a in alts:
        # the text the stream generated, stop sequence included, is what the state has read
        read = a.text + ("e " if a.reason == "stop" else "")
        logits, state = start(engine, PROMPT + read)
        for x, y in zip(flat(a.state), flat(state)):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(a.logits, logits, rtol=1e-4, atol=1e-4)
        more = SamplingParams(temperature=0, max_chars=60)
        after_pick = "".join(t.char for t in engine.stream(a.logits, a.state, more))
        after_read = "".join(t.char for t in engine.stream(logits, state, more))
        assert after_pick == after_read


def test_streams_join_and_leave_between_steps(make_checkpoint):
    engine = engine_for(make_checkpoint, "gru", "int8")
    logits, state = start(engine)
    p = [SamplingParams(temperature=t, seed=s, max_chars=n) for t, s, n in ((1.0, 1, 50), (0.5, 2, 30), (0, 3, 40))]
    alone = [alternatives(engine, logits, state, q, 1)[0].text for q in p]
    streams = BatchedStreams(engine)
    texts = {}
    ids = [streams.add(logits, state, p[0])]
    for _ in range(10):
        streams.step()
    ids.append(streams.add(logits, state, p[1]))
    victim = streams.add(logits, state, SamplingParams(temperature=1.0, seed=9, max_chars=1000))
    for _ in range(5):
        streams.step()
    streams.remove(victim)
    ids.append(streams.add(logits, state, p[2]))
    streams.run()
    assert streams.active == []
    for sid in ids:
        texts[sid] = streams.result(sid)[0]
    assert [texts[s] for s in ids] == alone


@pytest.mark.parametrize("weights", ["fp32", "int8"])
def test_a_prompt_read_inside_the_batch_is_what_feed_reads_and_the_others_go_on(make_checkpoint, weights):
    engine = engine_for(make_checkpoint, "lstm", weights, hidden=128, embedding=8)  # int8: rnnchat's kernel
    ids = engine.encode(PROMPT).ids
    p, q = SamplingParams(temperature=1.0, seed=7, max_chars=60), SamplingParams(temperature=0.8, seed=3, max_chars=90)
    alone = alternatives(engine, *start(engine), p, 1)[0]          # the prompt read by Engine.feed
    other_alone = alternatives(engine, *start(engine, "xyz"), q, 1)[0].text
    streams = BatchedStreams(engine)
    other = streams.add(*start(engine, "xyz"), q)                    # a stream already writing
    for _ in range(5):
        streams.step()
    sid = streams.add(None, engine.initial_state(), p, prompt=ids)  # reads its prompt in the batch
    victim = streams.add(None, engine.initial_state(), p, prompt=ids)
    for _ in range(len(ids)):
        out = streams.step()
        assert sid not in out and out[other]                        # nothing written while it reads
        if victim in streams.active:
            streams.remove(victim)                                  # one that leaves while reading
    streams.run()
    text, reason, logits, state = streams.result(sid)
    assert text == alone.text and reason == "length" and streams.result(other)[0] == other_alone
    exact = {"rtol": 0, "atol": 0} if weights == "int8" else {"rtol": 1e-4, "atol": 1e-5}
    for x, y in zip(flat(state), flat(alone.state)):
        torch.testing.assert_close(x, y, **exact)
    torch.testing.assert_close(logits, alone.logits, **exact)
    with pytest.raises(ValueError):
        streams.add(None, engine.initial_state(), p)  # neither logits nor a prompt
    for bad in ([-1], [len(engine.vocab.chars)]):
        with pytest.raises(ValueError, match="prompt ids"):
            streams.add(None, engine.initial_state(), p, prompt=bad)  # outside the table: refused at once


@pytest.mark.parametrize("weights", ["fp32", "int8"])
def test_the_step_takes_ids_of_any_integer_layout(make_checkpoint, weights):
    from rnnchat.engine.batched import BatchedModel

    engine = engine_for(make_checkpoint, "lstm", weights, hidden=128, embedding=8)  # past quant.SMALL: int8 kernels
    _, state = start(engine)
    logits = []
    for ids in (np.array([[1, 9], [4, 9]])[:, 0], np.array([1, 4], np.int32), [1, 4], np.array([1, 4])):
        bm = BatchedModel(engine.packed_weights(weights))  # a column of a table of ids, int32, a list
        bm.add(state)
        bm.add(state)
        logits.append(bm.step(ids).copy())
    assert all(np.array_equal(logits[-1], x) for x in logits)


@pytest.mark.slow  # three real CLI processes (6 s): run by .ci/run's second call
def test_cli_samples_format_and_json(make_checkpoint):
    path = str(make_checkpoint("lstm"))
    args = ("generate", PROMPT, "-m", path, "--seed", "2", "-n", "40", "--samples", "3")
    a = run_cli(*args)
    assert a.returncode == 0, a.stderr
    parts = a.stdout.split("--- sample ")
    assert parts[0] == "" and [p.split(" ---\n")[0] for p in parts[1:]] == ["1", "2", "3"]
    single = run_cli("generate", PROMPT, "-m", path, "--seed", "3", "-n", "40")
    j = run_cli(*args, "--json")
    data = json.loads(j.stdout)
    assert [d["seed"] for d in data] == [2, 3, 4] and all(d["finish_reason"] == "length" for d in data)
    assert data[1]["text"] == single.stdout and len(data[1]["text"]) == 40
    assert parts[2] == f"2 ---\n{data[1]['text']}\n"
