"""Choose NumPy's BLAS thread count for the per-character path by timing real steps.

Whether a second BLAS thread helps a batch-1 step depends on the machine and on
what else runs at that moment: on an idle 2-core machine here, 2 threads made a
2 x 512 LSTM 1.8x faster (its 13 MB of weights are read by both cores' caches);
with another process on the other core, 2 threads ran 10x slower than 1. So the
engine does not fix the count: each stream times its first characters with each
candidate count (:data:`PROBE` steps each, the first of each block not counted),
keeps the fastest for the rest of the stream and starts the next stream with it.
The thread count does not change the results: OpenBLAS splits a matrix-vector
product by output rows, so every output is the same sum in the same order
(``tests/speed`` checks it).

``RNNCHAT_BLAS_THREADS=N`` fixes the count (no probing).
"""

from __future__ import annotations

import os
import statistics
import time

from rnnchat.engine.blas import env_threads, set_blas_threads

PROBE = 24  # steps timed per candidate; a stream shorter than the probe keeps the last choice
TIE = 0.10  # a count with more threads timed within this fraction of the fastest is taken instead


def candidates(cpus: int | None = None) -> list[int]:
    cpus = cpus or os.cpu_count() or 1
    return sorted({1, min(cpus, 2), min(cpus, 4)})


class ThreadChoice:
    """The BLAS thread count for one engine's NumPy path. ``probe(step)`` wraps a stream's step
    function while the stream's first characters are timed; it returns ``step`` itself when the
    count is fixed or there is only one candidate."""

    def __init__(self, fixed: int | None = None, options: list[int] | None = None, setter=None) -> None:
        fixed = fixed or env_threads()
        self.fixed = fixed
        self.options = [fixed] if fixed else (options or candidates())
        self.threads = self.options[0]
        self.timings: dict[int, float] = {}  # median seconds per step at the last complete probe
        self.setter = setter  # None: OpenBLAS's count; bf16/int8 weights set torch's (multi.py)
        self.set(self.threads)

    def set(self, n: int) -> None:
        (self.setter or set_blas_threads)(n)

    def probe(self, step, done=None):
        """``step`` timed for the stream's first characters; ``done(step)`` is called with the
        plain ``step`` once the probe is over, so that the caller can drop the wrapper."""
        if len(self.options) < 2:
            return step
        return _Probe(self, step, done)

    def chose(self, timings: dict[int, float]) -> None:
        """Keep the fastest count, or a larger one timed within :data:`TIE` of it: a near tie means
        the other core was taken while it was timed (two threads that cannot run together time as
        one; measured in a server's engine after a batch: 74.6 against 74.7 us a step, then 11-12K
        chars/s on one thread where two made 17-18K), while a core that is really busy shows as a
        large gap (10x above)."""
        self.timings = timings
        best = min(timings, key=timings.get)
        near = [n for n, t in timings.items() if n > best and t <= timings[best] * (1 + TIE)]
        self.threads = max(near) if near else best
        self.set(self.threads)


class _Probe:
    """Calls ``step`` with each candidate thread count for PROBE steps, then the fastest."""

    def __init__(self, choice: ThreadChoice, step, done=None) -> None:
        self.choice, self.step_fn, self.on_done = choice, step, done
        self.order = list(choice.options)
        self.times: dict[int, list[float]] = {n: [] for n in self.order}
        self.k = 0  # steps so far
        self.done = False
        choice.set(self.order[0])

    def __call__(self, idx):
        if self.done:
            return self.step_fn(idx)
        n = self.order[self.k // (PROBE + 1)]
        t0 = time.perf_counter()
        out = self.step_fn(idx)
        dt = time.perf_counter() - t0
        if self.k % (PROBE + 1):  # the first step after a switch wakes the threads: not counted
            self.times[n].append(dt)
        self.k += 1
        if self.k % (PROBE + 1) == 0:
            block = self.k // (PROBE + 1)
            if block == len(self.order):
                self.done = True
                self.choice.chose({n: statistics.median(v) for n, v in self.times.items()})
                if self.on_done is not None:
                    self.on_done(self.step_fn)
            else:
                self.choice.set(self.order[block])
        return out

    def close(self) -> None:
        """The stream ended: an unfinished probe leaves the previous choice in place."""
        if not self.done:
            self.choice.set(self.choice.threads)
