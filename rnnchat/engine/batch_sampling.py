"""Sampling K streams at once: one softmax over a ``[K, V]`` array instead of K sampler calls.

A batched step costs one matrix product per layer; sampling each stream with its own
:class:`~rnnchat.engine.sampling.Sampler` call costs a dozen NumPy calls per stream, which at
K = 8 cost as much as the products. :func:`sample_rows` makes the same choices with O(1) NumPy
calls for all the rows whose sampler is a plain :class:`Sampler` (any temperature, a banned
id, no filter or penalty in effect, see :data:`OFF`): every row still draws its own uniform
number from its own sampler's generator, and the arithmetic is the single sampler's, element for
element, in float32 (``exp`` of the same values, the same sequential cumulative sum, the same
``u x total`` target), so a row's choice equals what its sampler alone would choose
(``tests/speed/test_batch_sampling.py``). Other rows are sampled by their sampler's own call.
Where rnnchat's C extension ``_sample`` was built, that arithmetic runs in one call per step (the
same float32 operations, exp by NumPy's own loop): at K = 8 the NumPy calls cost ~20 us a step.
"""

from __future__ import annotations

import math
from dataclasses import fields
from operator import attrgetter

import numpy as np

from rnnchat.engine import sampling as _sampling
from rnnchat.engine.sampling import _BANNED, Sampler
from rnnchat.core.errors import SamplingError
from rnnchat.core.params import SamplingParams

F32 = np.float32
_PLAIN_CALL = Sampler.__call__
# Every SamplingParams field is either handled here or a knob whose "off" value is listed: a row
# with a knob on is sampled by its own sampler. A field added later that is in neither set turns
# the vectorised pass off (every row samples itself: slower, never different) until it is listed.
HANDLED = {"temperature", "seed", "max_chars", "stop", "repetition_penalty"}  # the penalty: while off or idle
OFF = {"top_k": 0, "top_p": 1.0, "min_p": 0.0, "presence_penalty": 0.0, "frequency_penalty": 0.0}
_NAMES = {f.name for f in fields(SamplingParams)}
VECTORISED = _NAMES <= HANDLED | set(OFF)
_KNOBS = tuple(k for k in OFF if k in _NAMES)
_knobs, _OFF_VALUES = attrgetter(*_KNOBS), tuple(OFF[k] for k in _KNOBS)


def sample_rows(logits: np.ndarray, samplers: list) -> np.ndarray:
    """One id per row of ``logits`` (float32 ``[K, V]``, not modified), row ``r`` chosen as
    ``samplers[r](logits[r])`` would choose it (and its ``accept`` called once)."""
    k = len(samplers)
    ids = np.empty(k, np.int64)
    if k == 1 or not VECTORISED or len(set(map(id, samplers))) < k:  # (shared: it draws in row order)
        for r, s in enumerate(samplers):
            ids[r] = s(logits[r])[0]
        return ids
    rows, us, temps, banned = [], [], [], []
    last = None
    for r, s in enumerate(samplers):
        p = s.params
        if p is not last:  # (streams usually share one frozen SamplingParams: checked once)
            last, plain, penalty, t = p, _knobs(p) == _OFF_VALUES, p.repetition_penalty != 1.0, p.temperature
        if not plain or type(s).__call__ is not _PLAIN_CALL or (penalty and s.recent):
            ids[r] = s(logits[r])[0]  # this row's own sampler (its draw is its own: order is free)
            continue
        rows.append(r)
        us.append(s.rng.random())  # the row's uniform number, drawn as its sampler draws it
        temps.append(t)
        banned.append(-1 if s.banned is None else s.banned)
    if not rows:
        return ids
    x = logits if len(rows) == k else logits[rows]
    choice = _plain_rows(x, temps, us, banned)
    ids[rows] = choice
    for r, c in zip(rows, choice.tolist()):
        samplers[r].accept(c)
    return ids


class PlainDraw:
    """The plain temperature draw of a fixed set of rows, each checked once: while the rows and
    their parameters stay as they are (the caller builds a new one when they change), a step is
    one uniform number per row from its sampler's generator, one compiled call and each sampler's
    ``accept``, in row order: what :func:`sample_rows` does for such rows, without checking every
    row at every step. Only rows whose every knob is off (the repetition penalty too, so that
    what a sampler remembers cannot matter) and whose sampler is a plain :class:`Sampler`."""

    def __init__(self, fast, samplers: list) -> None:
        self.fast, self.samplers = fast, samplers
        self.temps = np.array([s.params.temperature for s in samplers], np.float64)
        self.banned = np.array([-1 if s.banned is None else s.banned for s in samplers], np.int64)
        self.accepts = [s.accept for s in samplers]

    @classmethod
    def build(cls, samplers: list) -> "PlainDraw | None":
        """The draw of these rows, or None where :func:`sample_rows` must look at them each step."""
        fast = _sampling.compiled_sampler()
        k = len(samplers)
        if fast is None or k < 2 or not VECTORISED or len(set(map(id, samplers))) < k:
            return None
        for s in samplers:
            p = s.params
            if type(s).__call__ is not _PLAIN_CALL or _knobs(p) != _OFF_VALUES or p.repetition_penalty != 1.0:
                return None
        return cls(fast, list(samplers))

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        us = np.array([s.rng.random() for s in self.samplers], np.float64)
        out = np.empty(len(self.samplers), np.int64)
        _check(self.fast.rows(np.ascontiguousarray(logits, F32), self.temps, us, self.banned, out) >= 0)
        for accept, c in zip(self.accepts, out.tolist()):
            accept(c)
        return out


def _check(bad: bool) -> None:
    if bad:
        raise SamplingError("model produced invalid values (NaN or infinite logits); "
                            "the checkpoint may be corrupt or training diverged")


def _plain_rows(x: np.ndarray, temps: list, us: list, banned: list) -> np.ndarray:
    """The choice of each row of ``x`` (float32 ``[K, V]``, not modified) by the plain temperature
    draw: rnnchat's compiled loop where it was built, else NumPy over all the rows at once."""
    k, v = x.shape
    fast = _sampling.compiled_sampler()
    if fast is not None:
        out = np.empty(k, np.int64)
        _check(fast.rows(np.ascontiguousarray(x, F32), np.array(temps, np.float64), np.array(us, np.float64),
                                np.array(banned, np.int64), out) >= 0)
        return out
    _check(not math.isfinite(np.add.reduce(x, axis=None)) and not np.isfinite(x).all())
    x = x.copy()
    cold = [j for j, t in enumerate(temps) if not t]
    inv = [F32(1.0) / F32(t) if t else F32(1.0) for t in temps]
    for j, b in enumerate(banned):
        if 0 <= b < v:
            x[j, b] = _BANNED
    d = x - np.maximum.reduce(x, axis=1)[:, None]
    np.multiply(d, np.array(inv, F32)[:, None], out=d)
    np.exp(d, out=d)
    cdf = np.add.accumulate(d, axis=1)
    target = np.array(us, F32) * cdf[:, -1]  # float32, as ``u * cdf[-1]`` in the single sampler
    choice = np.add.reduce(cdf <= target[:, None], axis=1)
    np.minimum(choice, v - 1, out=choice)
    if cold:
        choice[cold] = x[cold].argmax(axis=1)
    return choice

