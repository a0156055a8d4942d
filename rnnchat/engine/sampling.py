"""Turn logits into a character: penalties, temperature, top-k, top-p, min-p, seeded.

The order, per character: the repetition penalty (CTRL's rule, over the last 64 ids, the
prompt's included), then the presence and frequency penalties (OpenAI's rule, over the ids
this sampler chose: the reply so far), then the temperature, then top-k, top-p and min-p
(each keeps the likeliest ids; min-p those with p >= min_p x p_max). Each one that is off
costs nothing: with all of them off the choices are those of the plain temperature draw.

The sampler works on a NumPy vector (a torch tensor is accepted and converted):
for a vocabulary of a few dozen characters each NumPy call costs about a
microsecond, a torch call several, and this runs once per generated character.

The choice is an inverse-CDF draw over the vocabulary in its own order: one
uniform number ``u`` from ``random.Random(seed)`` per character (greedy
characters draw one too, so a stream's numbers do not depend on the
temperature history), and the chosen id is the first whose cumulative
probability exceeds ``u`` times the total. The CUDA path
(:mod:`rnnchat.engine.fast_cuda`) makes the same draw on the device from the
same numbers, so a seed gives the same text on every device.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np

from rnnchat.core.errors import SamplingError
from rnnchat.core.params import SamplingParams

REPETITION_WINDOW = 64
PENDING_LIMIT = 4096
_sum, _max, _exp, _accumulate = np.add.reduce, np.maximum.reduce, np.exp, np.add.accumulate
_ONE = np.float32(1.0)
TOP_P_SLACK = 1e-6
_BANNED = np.float32(-1e30)  # a banned id's logit: finite (the NaN check stays), exp() of it is 0


def _as_vector(logits) -> np.ndarray:
    if isinstance(logits, np.ndarray):
        return logits.reshape(-1)
    # a torch tensor (kept torch-free at import: only engine code calls this with tensors)
    return logits.detach().reshape(-1).float().cpu().numpy()


class Sampler:
    """Samples one id from logits[V]. Reads ``params`` on every call, so changes apply at once."""

    def __init__(self, params: SamplingParams, seed: int | None = None, banned: int | None = None) -> None:
        self.params = params
        self.banned = banned  # an id never chosen (a vocabulary's shared rare-character token)
        if seed is None:
            seed = params.seed if params.seed is not None else random.randrange(2**63)
        self.seed = seed
        self.recent: list[int] = []
        self._counts: np.ndarray | None = None  # occurrences of each id in ``recent``
        # how often this sampler chose each id (the reply so far): the ids chosen since the last
        # count wait in ``_pending`` (an append per character; counted when a penalty needs them)
        self._chosen: np.ndarray | None = None
        self._pending: list[int] = []

    @property
    def seed(self) -> int:
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        """Setting the seed restarts the random stream from it."""
        self._seed = value
        self.rng = random.Random(value)

    def uniform(self) -> float:
        """The next number of this sampler's stream, in [0, 1)."""
        return self.rng.random()

    def remember(self, ids) -> None:
        """Add ids (the prompt, or characters chosen elsewhere) to the repetition window."""
        for i in ids:
            i = int(i)
            self.recent.append(i)
            if self._counts is not None and 0 <= i < self._counts.size:
                self._counts[i] += 1
        if len(self.recent) > REPETITION_WINDOW:
            gone = self.recent[:-REPETITION_WINDOW]
            del self.recent[:-REPETITION_WINDOW]
            if self._counts is not None:
                for i in gone:
                    if 0 <= i < self._counts.size:
                        self._counts[i] -= 1

    def chosen_counts(self, size: int) -> np.ndarray:
        """float32[size]: how often each id was chosen by this sampler (what the presence and
        frequency penalties count)."""
        chosen = self._chosen
        if self._pending:
            ids = np.asarray(self._pending, np.int64)
            self._pending = []
            ids = ids[ids >= 0]
            n = max(size, int(ids.max()) + 1 if ids.size else 0, 0 if chosen is None else chosen.size)
            counts = np.bincount(ids, minlength=n).astype(np.float32)
            if chosen is not None:
                counts[:chosen.size] += chosen
            chosen = self._chosen = counts
        if chosen is None or chosen.size < size:
            grown = np.zeros(size, np.float32)
            if chosen is not None:
                grown[:chosen.size] = chosen
            chosen = self._chosen = grown
        return chosen if chosen.size == size else chosen[:size]

    def _recent_mask(self, size: int) -> np.ndarray:
        if self._counts is None or self._counts.size != size:
            self._counts = np.zeros(size, np.int64)
            for i in self.recent:
                if 0 <= i < size:
                    self._counts[i] += 1
        return self._counts > 0

    def __call__(self, logits) -> tuple[int, float]:
        """Returns (id, probability the model gave that id at temperature 1)."""
        # ufunc methods (np.add.reduce, ...) cost about half of the ndarray methods at this size
        x = logits if type(logits) is np.ndarray else _as_vector(logits)
        p = self.params
        u = self.rng.random()
        fast = compiled_sampler()
        if (fast is not None and x.dtype == np.float32 and x.ndim == 1 and x.flags.c_contiguous
                and not (p.top_k or p.top_p < 1.0 or p.min_p or p.presence_penalty or p.frequency_penalty)
                and (p.repetition_penalty == 1.0 or not self.recent)):
            # the plain draw in one compiled call: the same float32 arithmetic as below (_sample.c)
            choice, prob = fast.one(x, p.temperature, u, -1 if self.banned is None else self.banned)
            if choice < 0:
                raise SamplingError("model produced invalid values (NaN or infinite logits); "
                                    "the checkpoint may be corrupt or training diverged")
            self.accept(choice)
            return choice, prob
        # any NaN or infinity makes the sum non-finite (huge finite logits may overflow it: check those)
        if not math.isfinite(_sum(x)) and not np.isfinite(x).all():
            raise SamplingError("model produced invalid values (NaN or infinite logits); "
                                "the checkpoint may be corrupt or training diverged")
        if self.banned is not None and 0 <= self.banned < x.size:
            x = x.copy()  # (only when a token is banned: the usual path copies nothing)
            x[self.banned] = _BANNED
        d = x - _max(x)
        raw = _exp(d)
        raw_total = float(_sum(raw))
        temperature = p.temperature
        penalised = False
        if p.repetition_penalty != 1.0 and self.recent:
            x = apply_repetition_penalty(x, self._recent_mask(x.size), p.repetition_penalty)
            penalised = True
        if p.presence_penalty or p.frequency_penalty:
            x = apply_presence_frequency(x, self.chosen_counts(x.size), p.presence_penalty, p.frequency_penalty)
            penalised = True
        if penalised:
            if temperature:
                d = x - _max(x)
        elif temperature == 1.0 and not (p.top_k or p.top_p < 1.0 or p.min_p):
            choice = draw(raw, u)
            self.accept(choice)
            return choice, float(raw[choice]) / raw_total
        if temperature == 0:
            choice = int(x.argmax())
        else:
            probs = _exp(d * (_ONE / np.float32(temperature)))  # float32 like the device sampler
            if p.top_k or p.top_p < 1.0 or p.min_p:
                probs = filter_top(probs, p.top_k, p.top_p, p.min_p)
            choice = draw(probs, u)
        self.accept(choice)
        return choice, float(raw[choice]) / raw_total

    def accept(self, i: int) -> None:
        """Called once for every chosen id, by every path (the CUDA one samples on the device
        and calls only this): a subclass that records choices overrides this, not ``__call__``."""
        pending = self._pending
        pending.append(i)
        if len(pending) >= PENDING_LIMIT:  # (while the penalties are off: keep the list short)
            self.chosen_counts(0)
        recent = self.recent
        recent.append(i)
        counts = self._counts
        if counts is not None and i < counts.size:
            counts[i] += 1
        if len(recent) > REPETITION_WINDOW:
            old = recent.pop(0)
            if counts is not None and old < counts.size:
                counts[old] -= 1


def apply_repetition_penalty(x: np.ndarray, recent: np.ndarray, penalty: float) -> np.ndarray:
    """Divide positive logits of recent ids by ``penalty``, multiply negative ones (CTRL's rule)."""
    return np.where(recent, np.where(x > 0, x / penalty, x * penalty), x)


def apply_presence_frequency(x: np.ndarray, counts: np.ndarray, presence: float, frequency: float) -> np.ndarray:
    """OpenAI's penalties: ``x[c] - presence * (counts[c] > 0) - frequency * counts[c]`` in float32
    (the device sampler computes the same)."""
    return x - np.float32(frequency) * counts - np.float32(presence) * (counts > 0)


def draw(probs: np.ndarray, u: float) -> int:
    """Inverse CDF: the first id whose cumulative (unnormalised) probability exceeds ``u`` x total."""
    cdf = _accumulate(probs)
    choice = int(cdf.searchsorted(u * cdf[-1], "right"))
    return choice if choice < probs.size else probs.size - 1


def filter_top(probs, top_k: int, top_p: float, min_p: float = 0.0):
    """Zero all but the ``top_k`` most likely ids (ties kept), then all but the smallest set
    whose probability reaches ``top_p``, then those under ``min_p`` times the likeliest's.
    Takes and returns NumPy arrays or torch tensors."""
    if not isinstance(probs, np.ndarray):
        import torch

        return torch.from_numpy(filter_top(_as_vector(probs).copy(), top_k, top_p, min_p)).to(probs.dtype)
    n = probs.size
    if top_k and top_k < n:
        kth = np.partition(probs, n - top_k)[n - top_k]
        probs = np.where(probs >= kth, probs, 0.0).astype(probs.dtype, copy=False)
    if top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        sorted_p = probs[order]
        cum = _accumulate(sorted_p)
        # keep the smallest set reaching top_p (a mass within float noise of top_p reaches it)
        keep = (cum - sorted_p) < (top_p - TOP_P_SLACK) * cum[-1]
        keep[0] = True
        out = np.zeros_like(probs)
        out[order[keep]] = sorted_p[keep]
        probs = out
    if min_p:
        probs = np.where(probs >= np.float32(min_p) * _max(probs), probs, 0).astype(probs.dtype, copy=False)
    return probs


@functools.cache
def compiled_sampler():
    """rnnchat's compiled plain draw (``rnnchat/engine/_sample.c``: the arithmetic of
    :meth:`Sampler.__call__`'s plain case and of ``batch_sampling``'s rows, exp by NumPy's own
    float32 loop), or None where it was not built. Looked up at each call, so tests can turn it off."""
    try:
        from rnnchat.engine import _sample
    except ImportError:
        return None
    return _sample if _sample.set_exp(np.exp) else None
