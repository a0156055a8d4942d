"""Generation memory does not grow with conversation length (counts objects, never time)."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
import torch

from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.generate import Engine
from rnnchat.core.params import SamplingParams


def live_tensors() -> int:
    """Live torch tensors (NumPy arrays are not tracked by gc; tracemalloc sees their memory)."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is torch.Tensor or type(o) is torch.nn.Parameter)


@pytest.mark.slow  # 20 turns of 500 characters, twice (9 s): run by .ci/run's second call
@pytest.mark.parametrize("fast", [True, False])
def test_many_turns_keep_memory_flat(make_checkpoint, fast):
    engine = Engine(load_checkpoint(make_checkpoint("lstm")), "cpu", fast=fast)
    state = engine.initial_state()
    params = SamplingParams(temperature=0.9, seed=1, max_chars=16, stop=("\n\n",))

    def turn(i):
        nonlocal state
        logits, state = engine.feed(engine.encode(f"YOU:\nturn {i}, tell me more\n\n").ids, state)
        stream = engine.stream(logits, state, params)
        reply = "".join(t.char for t in stream)
        state = stream.state
        return reply

    for i in range(10):
        turn(i)
    tracemalloc.start()
    before_objects = live_tensors()
    before, _ = tracemalloc.get_traced_memory()
    for i in range(10, 50):
        turn(i)
    after_objects = live_tensors()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert after_objects <= before_objects
    assert after - before < 16 * 1024  # bytes; a leak of one small array per turn would exceed it
