"""Sampling K rows at once chooses exactly what each row's own sampler would choose."""

from __future__ import annotations

import numpy as np
import pytest

from rnnchat.engine import batch_sampling, sampling
from rnnchat.engine.batch_sampling import sample_rows
from rnnchat.engine.sampling import Sampler
from rnnchat.core.errors import SamplingError
from rnnchat.core.params import SamplingParams

KNOBS = [dict(temperature=0.8), dict(temperature=1.0), dict(temperature=0), dict(temperature=1.7),
         dict(temperature=0.3), dict(temperature=1.0, top_k=4), dict(temperature=0.9, top_p=0.7),
         dict(temperature=1.2, repetition_penalty=1.3)]


class Recording(Sampler):
    """A sampler subclass that records its choices by overriding ``accept`` (stays vectorised)."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.seen: list[int] = []

    def accept(self, i: int) -> None:
        super().accept(i)
        self.seen.append(i)


def make(kind, knobs, seed, banned=None):
    return kind(SamplingParams(**knobs), seed, banned=banned)


@pytest.fixture(params=["compiled", "numpy"])
def path(request, monkeypatch):
    """Both ways of sampling the plain rows: rnnchat's compiled loop and NumPy's calls."""
    if request.param == "numpy":
        monkeypatch.setattr(sampling, "compiled_sampler", lambda: None)
    elif sampling.compiled_sampler() is None:
        pytest.skip("rnnchat's compiled sampler was not built here (no C compiler at install)")
    return request.param


@pytest.mark.parametrize("vocab", [5, 65, 97])
def test_rows_choose_what_their_own_sampler_chooses(vocab, path):
    rng = np.random.default_rng(vocab)
    rows = len(KNOBS) * 2
    batched = [make(Recording if j % 3 == 0 else Sampler, KNOBS[j % len(KNOBS)], 100 + j,
                    banned=(j % vocab) if j % 4 == 1 else None) for j in range(rows)]
    alone = [make(Recording if j % 3 == 0 else Sampler, KNOBS[j % len(KNOBS)], 100 + j,
                  banned=(j % vocab) if j % 4 == 1 else None) for j in range(rows)]
    for step in range(300):
        # scales from peaked to flat, and exact ties (greedy must pick the first)
        logits = (rng.standard_normal((rows, vocab)) * (0.1 + step % 7)).astype(np.float32)
        logits[:, vocab // 2] = logits[:, 0] = logits.max(1) + (step % 2)
        keep = logits.copy()
        got = sample_rows(logits, batched)
        assert np.array_equal(logits, keep)  # the caller's logits are not modified
        want = [s(logits[r].copy())[0] for r, s in enumerate(alone)]
        assert got.tolist() == want, step
    for a, b in zip(batched, alone):
        assert a.recent == b.recent and a.rng.random() == b.rng.random()
        if isinstance(a, Recording):
            assert a.seen == b.seen and len(a.seen) == 300


@pytest.mark.parametrize("vocab", [5, 65])
def test_a_draw_set_up_once_chooses_what_each_sampler_chooses(vocab):
    from rnnchat.engine.batch_sampling import PlainDraw

    if sampling.compiled_sampler() is None:
        pytest.skip("rnnchat's compiled sampler was not built here (no C compiler at install)")
    plain = [dict(temperature=t) for t in (0.8, 1.0, 0, 1.7, 0.3)]
    make_rows = lambda: [make(Recording if j == 2 else Sampler, plain[j], 7 + j, banned=1 if j == 3 else None)
                         for j in range(len(plain))]
    rows, alone = make_rows(), make_rows()
    draw = PlainDraw.build(rows)
    assert draw is not None
    rng = np.random.default_rng(vocab)
    for step in range(300):
        logits = (rng.standard_normal((len(rows), vocab)) * (0.1 + step % 7)).astype(np.float32)
        logits[:, 0] = logits.max(1)  # a tie: greedy picks the first
        assert draw(logits).tolist() == [s(logits[r].copy())[0] for r, s in enumerate(alone)], step
    assert all(a.recent == b.recent and a.rng.random() == b.rng.random() for a, b in zip(rows, alone))
    assert rows[2].seen == alone[2].seen and len(rows[2].seen) == 300
    bad = np.zeros((len(rows), vocab), np.float32)
    bad[1, 0] = np.nan
    with pytest.raises(SamplingError, match="NaN or infinite"):
        draw(bad)
    # rows it does not take: a knob on, the repetition penalty on, a shared sampler, one row
    for knobs in (dict(top_k=3), dict(repetition_penalty=1.2), dict(min_p=0.1)):
        assert PlainDraw.build([make(Sampler, knobs, 1), make(Sampler, {}, 2)]) is None
    one = make(Sampler, {}, 1)
    assert PlainDraw.build([one, one]) is None and PlainDraw.build([one]) is None


def test_a_sampler_shared_by_rows_draws_in_row_order():
    shared = Sampler(SamplingParams(temperature=1.0), 5)
    ref = Sampler(SamplingParams(temperature=1.0), 5)
    logits = np.random.default_rng(0).standard_normal((3, 20)).astype(np.float32)
    assert sample_rows(logits, [shared] * 3).tolist() == [ref(row)[0] for row in logits]


def test_invalid_logits_are_one_clear_error(path):
    logits = np.zeros((2, 10), np.float32)
    logits[1, 3] = np.nan
    with pytest.raises(SamplingError, match="NaN or infinite"):
        sample_rows(logits, [Sampler(SamplingParams(), 1), Sampler(SamplingParams(), 2)])


def test_every_sampling_knob_is_known_to_the_vectorised_pass():
    # a new SamplingParams field must be listed in batch_sampling (handled, or a knob with its off
    # value) before rows are vectorised again: until then every row samples itself
    from rnnchat.engine import sampling

    assert batch_sampling.VECTORISED, "list the new SamplingParams field in batch_sampling.HANDLED or OFF"


def test_the_compiled_sampler_refuses_bad_arguments():
    mod = sampling.compiled_sampler()
    if mod is None:
        pytest.skip("rnnchat's compiled sampler was not built here (no C compiler at install)")
    x, t, u, b, out = (np.zeros((2, 5), np.float32), np.ones(2), np.full(2, 0.5), np.full(2, -1, np.int64),
                       np.empty(2, np.int64))
    assert mod.rows(x, t, u, b, out) == -1 and out.tolist() == [2, 2]  # a flat row: the middle of its CDF
    bad_nan = x.copy()
    bad_nan[1, 3] = np.nan
    assert mod.rows(bad_nan, t, u, b, out) == 1                       # the first row with a bad logit
    for args in ((x, t[:1], u, b, out), (np.zeros((2, 0), np.float32), t, u, b, out),
                 (x, np.array([1.0, -1.0]), u, b, out), (x, t, np.array([0.5, 1.0]), b, out),
                 (x, np.array([1.0, np.nan]), u, b, out)):
        with pytest.raises(ValueError):
            mod.rows(*args)
    for args in ((x.astype(np.float64), t, u, b, out), (x, t, u, b.astype(np.int32), out), (x[:, ::2], t, u, b, out)):
        with pytest.raises((TypeError, ValueError)):
            mod.rows(*args)
    with pytest.raises(TypeError):
        mod.set_exp(len)


@pytest.mark.parametrize("vocab", [1, 5, 65, 300])
def test_a_single_samplers_compiled_draw_is_numpys(vocab, monkeypatch):
    if sampling.compiled_sampler() is None:
        pytest.skip("rnnchat's compiled sampler was not built here (no C compiler at install)")
    rng = np.random.default_rng(vocab)
    plain = [dict(temperature=0.8), dict(temperature=1.0), dict(temperature=0), dict(temperature=1.7),
             dict(temperature=0.05)]
    runs = []
    for compiled in (True, False):
        if not compiled:
            monkeypatch.setattr(sampling, "compiled_sampler", lambda: None)
        gen = np.random.default_rng(0)
        samplers = [Sampler(SamplingParams(**k), 7 + j, banned=(j % vocab) if j % 2 else None)
                    for j, k in enumerate(plain)]
        out = []
        for step in range(300):
            logits = (gen.standard_normal(vocab) * (0.1 + step % 9)).astype(np.float32)
            logits[vocab // 2] = logits[0] = logits.max() + (step % 2)  # exact ties: greedy takes the first
            out.append([s(logits) for s in samplers])
        runs.append(out)
    for a, b in zip(*runs):
        assert [c for c, _ in a] == [c for c, _ in b]
        assert np.allclose([p for _, p in a], [p for _, p in b], rtol=1e-5, atol=1e-7)
    monkeypatch.undo()
    bad = np.array([0.0, np.nan] + [0.0] * 3, np.float32)
    with pytest.raises(SamplingError):
        Sampler(SamplingParams(temperature=0.8), 1)(bad)     # the compiled draw says it in the same words
    one = sampling.compiled_sampler().one
    x = np.zeros(4, np.float32)
    assert one(x, 1.0, 0.5, -1) == (2, 0.25) and one(bad, 1.0, 0.5, -1)[0] == -1
    for args in ((x, -1.0, 0.5, -1), (x, 1.0, 1.0, -1), (x, float("nan"), 0.5, -1),
                 (np.zeros(0, np.float32), 1.0, 0.5, -1)):
        with pytest.raises(ValueError):
            one(*args)
    for args in ((x.astype(np.float64), 1.0, 0.5, -1), (np.zeros((2, 2), np.float32), 1.0, 0.5, -1),
                 (x[::2], 1.0, 0.5, -1)):
        with pytest.raises((TypeError, ValueError)):
            one(*args)
