"""The whole command's time budget: a clock, measured costs, and how much evaluation fits.

A run's clock starts when the command starts (``COMMAND_START``, set when the ``train`` command
is imported) and goes on across resumes (the saved ``elapsed``). With a budget, the steps end
early enough that the final evaluation, the re-score of the best model and the saves still fit:
their costs are measured (a short probe at the start, then each evaluation and save), and the
evaluations and the re-score are cut to the part of the validation text that fits.
"""

from __future__ import annotations

import time

EVAL_SHARE = 0.10     # an evaluation takes at most this share of the time since the one before
MIN_EVAL_S = 0.25     # ... but may always take this long
RESCORE_SHARE = 0.08  # the final re-score takes at most this share of the budget while steps are planned
MIN_RESCORE_CHARS = 256  # a re-score that fits fewer characters is skipped
MARGIN_S = 0.5        # kept free at the end, plus 1% of the budget


class BudgetClock:
    def __init__(self, budget: float | None, started: float | None = None, spent_before: float = 0.0) -> None:
        self.budget = budget
        self.started = time.perf_counter() if started is None else started
        self.spent_before = spent_before
        self.step_s: float | None = None          # one training step, smoothed
        self.eval_chunk_s: float | None = None    # one chunk of a (many-stream) evaluation
        self.rescore_char_s: float | None = None  # one character of the one-stream re-score
        self.save_s: float = 0.0                  # the slowest save seen
        self.sample_s: float = 0.0                # generating a sample
        self.eval_chunks: int | None = None       # chunks an evaluation reads (None: all of them)
        self.last_eval_end: float | None = None

    # ---- the clock -------------------------------------------------------------------------
    def now(self) -> float:
        """The run's clock: seconds spent on this run by every command so far."""
        return self.spent_before + (time.perf_counter() - self.started)

    def left(self) -> float | None:
        return None if self.budget is None else self.budget - self.now()

    # ---- measurements ------------------------------------------------------------------------
    def saw_step(self, seconds: float) -> None:
        self.step_s = seconds if self.step_s is None else 0.9 * self.step_s + 0.1 * seconds

    def saw_save(self, seconds: float) -> None:
        self.save_s = max(self.save_s, seconds)

    # ---- what the end of the run needs ----------------------------------------------------------
    def margin(self) -> float:
        return MARGIN_S + 0.01 * (self.budget or 0.0)

    def save_reserve(self) -> float:
        """The best model's save, its copy, the last state: a few saves."""
        return 4 * self.save_s + 0.2

    def rescore_chars(self, total: int, time_left: float | None) -> int:
        """Characters of the validation text the final re-score reads (all of them without a budget)."""
        if self.budget is None or not self.rescore_char_s:
            return total
        if time_left is None:
            time_left = RESCORE_SHARE * self.budget
        fit = min(total, int(max(0.0, time_left) / self.rescore_char_s))
        return fit if fit >= min(total, MIN_RESCORE_CHARS) else 0

    def reserve(self, val_chars: int, final_eval_chunks: int) -> float:
        """Seconds to keep for what follows the last step: final evaluation, re-score, saves."""
        if self.budget is None:
            return 0.0
        evaluation = (self.eval_chunk_s or 0.0) * final_eval_chunks + self.sample_s
        rescore = self.rescore_chars(val_chars, RESCORE_SHARE * self.budget) * (self.rescore_char_s or 0.0)
        return evaluation + rescore + self.save_reserve() + self.margin()

    def plan_eval_chunks(self, total: int, commit: bool = True) -> int:
        """How many chunks the evaluations read: fixed at the first one (``commit``), so their losses
        compare. Before it, an estimate for the final evaluation (a tenth of the budget at most)."""
        if self.budget is None or not self.eval_chunk_s:
            return total
        if self.eval_chunks is not None:
            return min(total, self.eval_chunks)
        if not commit:
            return max(1, min(total, int(EVAL_SHARE * self.budget / self.eval_chunk_s)))
        since = self.now() - (self.last_eval_end or 0.0)
        cap = max(MIN_EVAL_S, EVAL_SHARE * since)
        self.eval_chunks = max(1, min(total, int(cap / self.eval_chunk_s)))
        return self.eval_chunks
