"""The thread count of a server's engine thread (rnnchat.engine.serve_threads.StepThreads) on a fake
clock: timed per regime, and a choice of fewer threads than allowed timed once more later (a
server enters a regime at a busy moment: the other process's streams ending)."""

from __future__ import annotations

import pytest

from rnnchat.engine import blas_choice, serve_threads
from rnnchat.engine.blas_choice import PROBE
from rnnchat.engine.serve_threads import RECHECK_STEPS, StepThreads


class Machine:
    """A fake clock and thread setting: a step takes ``cost[threads]`` seconds."""

    def __init__(self, monkeypatch, cost: dict[int, float]) -> None:
        self.now, self.threads, self.cost, self.set_calls = 0.0, 1, dict(cost), []
        monkeypatch.delenv("RNNCHAT_BLAS_THREADS", raising=False)
        monkeypatch.setattr(blas_choice.time, "perf_counter", lambda: self.now)
        monkeypatch.setattr(serve_threads, "candidates", lambda: [1, 2])
        monkeypatch.setattr(serve_threads, "set_threads", self.set)

    def set(self, n: int) -> None:
        self.threads = n
        self.set_calls.append(n)

    def step(self):
        self.now += self.cost[self.threads]
        return {}


PROBE_STEPS = 2 * (PROBE + 1)  # both candidates timed


def run(threads: StepThreads, machine: Machine, steps: int, rows: int = 8) -> list[int]:
    used = []
    for _ in range(steps):
        used.append(machine.threads)
        threads.step(rows, machine.step)
    return used


def test_a_choice_of_fewer_threads_is_timed_again_once_and_corrected(monkeypatch):
    machine = Machine(monkeypatch, {1: 200e-6, 2: 900e-6})  # the other core busy while first timed
    threads = StepThreads()
    run(threads, machine, PROBE_STEPS)
    assert threads.choices[(False, 0)].threads == 1
    machine.cost[2] = 130e-6  # the other core free again
    run(threads, machine, RECHECK_STEPS - 1)
    assert machine.threads == 1  # (not yet)
    run(threads, machine, 1 + PROBE_STEPS)
    assert threads.choices[(False, 0)].threads == 2 and machine.threads == 2
    machine.cost[2] = 900e-6
    calls = len(machine.set_calls)
    run(threads, machine, 5 * RECHECK_STEPS)  # once per regime: no more timing, two threads kept
    assert len(machine.set_calls) == calls and machine.threads == 2


def test_a_choice_confirmed_by_the_second_timing_stays_and_the_next_regime_times_again(monkeypatch):
    machine = Machine(monkeypatch, {1: 200e-6, 2: 900e-6})
    threads = StepThreads()
    run(threads, machine, PROBE_STEPS + RECHECK_STEPS + PROBE_STEPS + 3 * RECHECK_STEPS)
    assert threads.choices[(False, 0)].threads == 1 and machine.threads == 1
    machine.cost = {1: 60e-6, 2: 45e-6}
    used = run(threads, machine, PROBE_STEPS + 10, rows=1)  # a lone stream: its own regime, timed
    assert set(used[:PROBE_STEPS]) == {1, 2} and machine.threads == 2
    assert threads.choices[(True, 0)].threads == 2


def test_the_most_threads_allowed_are_not_timed_again(monkeypatch):
    machine = Machine(monkeypatch, {1: 200e-6, 2: 130e-6})
    threads = StepThreads()
    run(threads, machine, PROBE_STEPS)
    calls = len(machine.set_calls)
    run(threads, machine, 3 * RECHECK_STEPS)
    assert len(machine.set_calls) == calls and machine.threads == 2


def test_the_cap_is_read_every_few_steps_and_a_cap_of_one_is_not_timed(monkeypatch):
    machine = Machine(monkeypatch, {1: 200e-6, 2: 130e-6})
    caps = []

    def cap():
        caps.append(1)
        return 1

    threads = StepThreads(cap)
    used = run(threads, machine, 3 * serve_threads.CAP_EVERY)
    assert set(used) == {1} and len(caps) == 3 and list(threads.choices) == [(False, 1)]
    threads.reread_cap()
    run(threads, machine, 1)
    assert len(caps) == 4


@pytest.mark.parametrize("rows", [1, 8])
def test_the_plain_step_result_comes_back_while_timed_and_after(monkeypatch, rows):
    machine = Machine(monkeypatch, {1: 200e-6, 2: 130e-6})
    threads = StepThreads()
    out = [threads.step(rows, lambda: {0: "x"}) for _ in range(PROBE_STEPS + 3)]
    assert out == [{0: "x"}] * (PROBE_STEPS + 3)
