"""The NumPy sampler draws from the intended distribution; the device sampler (the CUDA
graph's) makes the same choices from the same numbers. CUDA-only parts skip without a GPU."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.fast_cuda import DeviceSampledModel, device_sample, knob_values
from rnnchat.engine.generate import Engine
from rnnchat.engine.sampling import Sampler
from rnnchat.core.params import LiveParams, SamplingParams

KNOBS = [dict(temperature=0), dict(temperature=1.0), dict(temperature=0.6), dict(temperature=2.0, top_k=4),
         dict(temperature=1.0, top_p=0.5), dict(temperature=0.9, top_k=10, top_p=0.9),
         dict(temperature=1.2, repetition_penalty=1.5), dict(temperature=0, repetition_penalty=3.0),
         dict(temperature=0.8, min_p=0.2), dict(temperature=1.0, presence_penalty=0.8, frequency_penalty=0.3),
         dict(temperature=0, frequency_penalty=1.5), dict(temperature=1.3, top_k=10, top_p=0.9, min_p=0.1,
                                                          repetition_penalty=1.2, presence_penalty=-0.5,
                                                          frequency_penalty=0.4)]


def expected_distribution(logits, temperature, top_k=0, top_p=1.0):
    """The definition, written independently in float64 torch."""
    p = torch.softmax(torch.as_tensor(logits, dtype=torch.float64) / temperature, 0)
    if top_k:
        kth = torch.sort(p, descending=True).values[top_k - 1]
        p = torch.where(p >= kth, p, 0.0)
    if top_p < 1.0:
        sp, order = torch.sort(p, descending=True)
        before = torch.cumsum(sp, 0) - sp
        keep = before < top_p * sp.sum()
        q = torch.zeros_like(p)
        q[order[keep]] = sp[keep]
        p = q
    return (p / p.sum()).numpy()


@pytest.mark.parametrize("knobs", [dict(temperature=1.0), dict(temperature=0.5, top_k=6),
                                   dict(temperature=1.5, top_p=0.7)])
def test_numpy_sampler_matches_the_distribution(knobs):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=20).astype(np.float32) * 2
    s = Sampler(SamplingParams(seed=123, **knobs))
    n = 20000
    counts = np.bincount([s(logits)[0] for _ in range(n)], minlength=20)
    want = expected_distribution(logits, **knobs)
    assert counts[want == 0].sum() == 0
    live = want > 0
    chi2 = float((((counts[live] - n * want[live]) ** 2) / (n * want[live])).sum())
    dof = int(live.sum()) - 1
    assert chi2 < dof + 6 * (2 * dof) ** 0.5 + 10  # far in the tail only if the sampler is wrong


@pytest.mark.parametrize("knobs", KNOBS)
def test_device_sampler_makes_the_numpy_samplers_choices(knobs):
    gen = torch.Generator().manual_seed(1)
    params = SamplingParams(seed=7, **knobs)
    host = Sampler(params)
    us = random.Random(99)
    recent: list[int] = []
    for _ in range(300):
        logits = torch.randn(40, generator=gen) * 3
        u = us.random()
        chosen = torch.from_numpy(host.chosen_counts(40).copy())  # the reply so far, before this draw
        host.rng = random.Random()  # make the host draw the same u as the device
        host.rng.random = lambda u=u: u
        idx, prob = host(logits)
        mask = torch.zeros(40, dtype=torch.bool)
        if recent and params.repetition_penalty != 1.0:
            mask[torch.tensor(recent[-64:])] = True
        d_idx, d_prob, ok = device_sample(logits, torch.tensor(knob_values(u, params)), mask, chosen)
        assert int(d_idx) == idx and bool(ok)
        assert abs(float(d_prob) - prob) < 1e-5
        recent.append(idx)


def text(engine, params, stream_kw=None):
    logits, state = engine.feed(engine.encode("BOB:\nWhat light").ids, engine.initial_state())
    stream = engine.stream(logits, state, params)
    return "".join(t.char for t in stream), stream


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("knobs", [dict(temperature=0), dict(temperature=1.0, top_k=8, repetition_penalty=1.2),
                                   dict(temperature=0.9, min_p=0.1, presence_penalty=0.6, frequency_penalty=0.2)])
def test_device_sampled_runner_gives_the_numpy_paths_text(make_checkpoint, cell, knobs):
    path = make_checkpoint(cell, hidden=16, embedding=6)
    fast = Engine(load_checkpoint(path), "cpu")
    dev = Engine(load_checkpoint(path), "cpu", fast=False)
    dev.fast = DeviceSampledModel(dev.model, torch.device("cpu"), graph=False)  # the graph's body, eagerly
    dev.backend = dev.fast.backend
    params = SamplingParams(seed=21, max_chars=200, stop=("\n\n",), **knobs)
    a, sa = text(fast, params)
    b, sb = text(dev, params)
    assert sb.reason == sa.reason
    assert a == b
    torch.testing.assert_close(sa.logits, sb.logits, rtol=1e-4, atol=1e-4)
    # the static buffers are free again for the next stream
    assert dev.fast.lock.acquire(blocking=False)
    dev.fast.lock.release()


def test_second_concurrent_stream_falls_back_to_torch_steps(make_checkpoint):
    engine = Engine(load_checkpoint(make_checkpoint("lstm")), "cpu", fast=False)
    engine.fast = DeviceSampledModel(engine.model, torch.device("cpu"), graph=False)
    engine.backend = engine.fast.backend
    logits, state = engine.feed([1, 2, 3], engine.initial_state())
    first = engine.stream(logits, state, SamplingParams(seed=1, max_chars=10))
    it = iter(first)
    next(it)
    second = engine.stream(logits, state, SamplingParams(seed=1, max_chars=10))
    assert first.backend == "device-sampled"
    assert len(list(second)) == 10 and second.backend == "torch"
    assert len(list(it)) == 9


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_cuda_graph_path_gives_the_cpu_text(make_checkpoint, cell):
    path = make_checkpoint(cell, hidden=32, embedding=8)
    cpu = Engine(load_checkpoint(path), "cpu")
    gpu = Engine(load_checkpoint(path, "cuda"), "cuda")
    assert gpu.backend == "cuda-graph"
    for knobs in (dict(temperature=0), dict(temperature=0.8, top_p=0.9, repetition_penalty=1.1),
                  dict(temperature=0, presence_penalty=0.5, frequency_penalty=0.3)):
        params = SamplingParams(seed=4, max_chars=200, **knobs)
        a, _ = text(cpu, params)
        b, sb = text(gpu, params)
        assert gpu.fast.graph is not None, gpu.fast.error
        assert sb.backend == "cuda-graph"
        # float rounding differs between devices; greedy text over 200 chars agrees in practice
        assert a == b


def probs_with_a_temperature_change(engine) -> list[float]:
    """60 characters at temperature 1.5, switched to greedy after the 10th, read live."""
    params = LiveParams(SamplingParams(temperature=1.5, seed=0, max_chars=60))
    logits, state = engine.feed([0], engine.initial_state())
    out = []
    for i, tok in enumerate(engine.stream(logits, state, params)):
        out.append(tok.prob)
        if i == 9:
            params.update(temperature=0.0)
    return out


@cuda
def test_cuda_graph_reads_parameters_live(make_checkpoint):
    gpu = Engine(load_checkpoint(make_checkpoint("lstm"), "cuda"), "cuda")
    ref = Engine(load_checkpoint(make_checkpoint("lstm", name="b")), "cpu")
    out, out2 = probs_with_a_temperature_change(gpu), probs_with_a_temperature_change(ref)
    np.testing.assert_allclose(out, out2, rtol=1e-3, atol=1e-5)
