"""The kernels' thread count of a server's engine thread (:class:`ModelWorker`).

It is timed like a single stream's (:mod:`rnnchat.engine.blas_choice`), apart for a lone stream
(OpenBLAS's or rnnchat's one-row products) and for a batch (oneDNN's or rnnchat's), and for each
cap on the threads (``threads_cap()``: the model's engine processes share the cores,
:mod:`rnnchat.engine.serve_procs`), again each time the worker passes from one regime to another.

A choice of fewer threads than the regime allows is timed once more :data:`RECHECK_STEPS` steps
later. A server passes into a regime at a busy moment: when the model's other process ends its
last streams, this one may use both cores, and it times them while the server's process and its
clients handle those ends on the other core. Measured (16 clients, bundled model): such a probe
kept one thread for the last ~490 steps of an 8-stream batch (221 us a step; two threads made
138 us in the other runs).
"""

from __future__ import annotations

from rnnchat.engine.blas_choice import ThreadChoice, candidates

CAP_EVERY = 16       # steps between two reads of the thread cap
RECHECK_STEPS = 100  # steps before a choice of fewer threads than allowed is timed again (once)


class StepThreads:
    """``step(rows, plain_step)`` runs one batched step with the thread count chosen for its
    regime (one row or more, and the cap now)."""

    def __init__(self, threads_cap=None) -> None:
        self.threads_cap = threads_cap
        self.choices: dict[tuple, ThreadChoice] = {}  # (lone, cap) -> the choice over the candidates up to the cap
        self.regime: tuple | None = None
        self.probe = None        # the step timed for the choice, while it is
        self.cap, self.cap_in = 0, 0  # the thread cap, and the steps before it is read again
        self.rechecks = 0        # probes still allowed in this regime after the first
        self.recheck_in = 0      # steps before that probe (0: none due)
        self._step = None

    def reread_cap(self) -> None:
        """Read the cap at the next step (the other processes may have changed it meanwhile)."""
        self.cap_in = 0

    def step(self, rows: int, plain_step):
        if self.threads_cap is not None:
            self.cap_in -= 1
            if self.cap_in <= 0:  # (read every CAP_EVERY steps: the other processes change it seldom)
                self.cap, self.cap_in = self.threads_cap(), CAP_EVERY
        regime = (rows == 1, self.cap)
        self._step = plain_step
        if regime != self.regime:
            if self.probe is not None:
                self.probe.close()
            self.regime, self.rechecks, self.recheck_in = regime, 1, 0
            choice = self.choices.get(regime)
            if choice is None:
                cap = regime[1]
                options = [n for n in candidates() if not cap or n <= cap] or [1]
                choice = self.choices[regime] = ThreadChoice(options=options, setter=set_threads)
            self._start_probe(choice)
        elif self.recheck_in:
            self.recheck_in -= 1
            if not self.recheck_in:
                self._start_probe(self.choices[regime])
        return self.probe(0) if self.probe is not None else plain_step()

    def _start_probe(self, choice: ThreadChoice) -> None:
        probe = choice.probe(self._plain, self._probed)  # timed again at every change, as a stream is
        # (a fixed count, RNNCHAT_BLAS_THREADS, or a single candidate: the plain step itself comes back)
        self.probe = probe if hasattr(probe, "close") else None
        if self.probe is None:
            choice.set(choice.threads)

    def _plain(self, _idx=0):
        return self._step()

    def _probed(self, _step) -> None:
        self.probe = None
        choice = self.choices[self.regime]
        if self.rechecks and choice.threads < max(choice.options):
            self.rechecks -= 1
            self.recheck_in = RECHECK_STEPS


def set_threads(n: int) -> None:
    from rnnchat.engine.blas import set_blas_threads
    from rnnchat.engine import quant

    set_blas_threads(n)
    quant.set_threads(n)
