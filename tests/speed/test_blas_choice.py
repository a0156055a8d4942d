"""The BLAS thread count is chosen by timing a stream's first steps; it never changes the text."""

from __future__ import annotations

import numpy as np
import pytest

import rnnchat.engine.blas_choice as bc
from rnnchat.engine.blas import blas_threads, set_blas_threads
from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.core.env import MAX_THREADS
from rnnchat.engine.generate import Engine
from rnnchat.core.params import SamplingParams

from tests.speed.test_fast_path import PROMPT


class FakeClock:
    """perf_counter that advances by the cost of a step at the current thread count."""

    def __init__(self, cost: dict[int, float]) -> None:
        self.now, self.cost, self.threads = 0.0, cost, 1
        self.calls = 0

    def perf_counter(self) -> float:
        self.calls += 1
        if self.calls % 2 == 0:  # the end of a timed step
            self.now += self.cost[self.threads]
        return self.now


@pytest.fixture
def fake(monkeypatch):
    def make(cost):
        clock = FakeClock(cost)
        monkeypatch.setattr(bc.time, "perf_counter", clock.perf_counter)
        monkeypatch.setattr(bc, "set_blas_threads", lambda n: setattr(clock, "threads", n) or n)
        monkeypatch.delenv("RNNCHAT_BLAS_THREADS", raising=False)
        return clock
    return make


@pytest.mark.parametrize("cost, best", [({1: 2.0, 2: 1.0}, 2), ({1: 1.0, 2: 10.0}, 1), ({1: 1.0, 2: 1.2}, 1),
                                        ({1: 1.0, 2: 1.05}, 2), ({1: 1.0, 2: 1.08, 4: 1.09}, 4)])
def test_the_faster_count_is_kept_after_the_probe_and_the_wrapper_goes(fake, cost, best):
    clock = fake(cost)
    choice = bc.ThreadChoice(options=sorted(cost))
    steps, swapped = [], []
    probe = choice.probe(steps.append, swapped.append)
    for i in range(len(cost) * (bc.PROBE + 1)):
        probe(i)
    # the fastest, or more threads timed within bc.TIE of it (a near tie: the other core was taken)
    assert choice.threads == best and clock.threads == best
    assert choice.timings == pytest.approx(cost)
    assert swapped == [steps.append]  # the runner then calls the plain step
    assert steps == list(range(len(cost) * (bc.PROBE + 1)))  # every character was stepped once, in order


def test_a_stream_shorter_than_the_probe_keeps_the_last_choice(fake):
    clock = fake({1: 2.0, 2: 1.0})
    choice = bc.ThreadChoice(options=[1, 2])
    choice.chose({1: 1.0, 2: 3.0})
    probe = choice.probe(lambda i: i)
    for i in range(bc.PROBE + 5):  # into the second block: 2 threads set
        probe(i)
    assert clock.threads == 2
    probe.close()
    assert clock.threads == 1 and choice.threads == 1


def test_a_fixed_count_is_not_probed(monkeypatch):
    monkeypatch.setenv("RNNCHAT_BLAS_THREADS", "1")
    choice = bc.ThreadChoice()
    step = object()
    assert choice.options == [1] and choice.probe(step) is step


def test_candidates():
    assert bc.candidates(1) == [1] and bc.candidates(2) == [1, 2] and bc.candidates(16) == [1, 2, 4]


def test_thread_count_does_not_change_products_or_text(make_checkpoint, monkeypatch):
    rng = np.random.default_rng(0)
    w, v = rng.standard_normal((1024, 777), dtype=np.float32), rng.standard_normal(777, dtype=np.float32)
    before = blas_threads()
    try:
        set_blas_threads(1)
        one = w @ v
        set_blas_threads(2)
        assert np.array_equal(one, w @ v)
    finally:
        set_blas_threads(before)
    path = make_checkpoint("lstm", hidden=64, embedding=6)
    texts = []
    for n in ("1", "2"):
        monkeypatch.setenv("RNNCHAT_BLAS_THREADS", n)
        engine = Engine(load_checkpoint(path), "cpu")
        logits, state = engine.feed(engine.encode(PROMPT).ids, engine.initial_state())
        texts.append("".join(t.char for t in engine.stream(logits, state, SamplingParams(temperature=0.7, seed=4,
                                                                                          max_chars=150))))
    assert texts[0] == texts[1]


def test_the_probe_runs_inside_a_real_stream_without_changing_its_text(make_checkpoint, monkeypatch):
    path = make_checkpoint("gru", hidden=32, embedding=6)
    monkeypatch.setenv("RNNCHAT_BLAS_THREADS", "1")
    fixed = Engine(load_checkpoint(path), "cpu")
    monkeypatch.delenv("RNNCHAT_BLAS_THREADS")
    probed = Engine(load_checkpoint(path), "cpu")
    assert len(probed.fast.threads.options) >= 1
    params = SamplingParams(temperature=0.9, seed=11, max_chars=3 * bc.PROBE)
    out = []
    for engine in (fixed, probed):
        logits, state = engine.feed(engine.encode(PROMPT).ids, engine.initial_state())
        out.append("".join(t.char for t in engine.stream(logits, state, params)))
    assert out[0] == out[1]
    if len(probed.fast.threads.options) > 1:
        assert set(probed.fast.threads.timings) == set(probed.fast.threads.options)


@pytest.mark.parametrize("value", ["two", pytest.param("0", marks=pytest.mark.slow), pytest.param("-3", marks=pytest.mark.slow)])
def test_a_bad_thread_setting_is_one_line_in_the_cli(make_checkpoint, value):
    from tests.conftest import run_cli

    r = run_cli("generate", "-m", str(make_checkpoint("lstm")), "-n", "3", "Cat",
                env={"RNNCHAT_BLAS_THREADS": value})
    assert r.returncode == 1
    assert r.stderr.strip() == (f"error: RNNCHAT_BLAS_THREADS must be a whole number from 1 to {MAX_THREADS}, "
                                f"not {value!r}")
