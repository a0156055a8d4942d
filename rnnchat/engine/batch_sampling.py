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
"""

from __future__ import annotations

import math
from dataclasses import fields
from operator import attrgetter

import numpy as np

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
    rows, us, inv, banned, cold = [], [], [], [], []
    for r, s in enumerate(samplers):
        p = s.params
        if (type(s).__call__ is not _PLAIN_CALL or _knobs(p) != _OFF_VALUES
                or (p.repetition_penalty != 1.0 and s.recent)):
            ids[r] = s(logits[r])[0]  # this row's own sampler (its draw is its own: order is free)
            continue
        j = len(rows)
        rows.append(r)
        us.append(s.rng.random())  # the row's uniform number, drawn as its sampler draws it
        t = p.temperature
        if t:
            inv.append(F32(1.0) / F32(t))
        else:
            inv.append(F32(1.0))
            cold.append(j)
        if s.banned is not None:
            banned.append((j, s.banned))
    if not rows:
        return ids
    x = logits.copy() if len(rows) == k else logits[rows]
    if not math.isfinite(np.add.reduce(x, axis=None)) and not np.isfinite(x).all():
        raise SamplingError("model produced invalid values (NaN or infinite logits); "
                            "the checkpoint may be corrupt or training diverged")
    v = x.shape[1]
    for j, b in banned:
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
    ids[rows] = choice
    for r, c in zip(rows, choice.tolist()):
        samplers[r].accept(c)
    return ids
