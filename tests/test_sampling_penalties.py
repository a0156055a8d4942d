"""min-p, presence and frequency penalties: their definitions on logits, the distribution the
sampler draws from, and, with all of them off, the very text a seed gave before they existed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.generate import Engine
from rnnchat.engine.sampling import Sampler, apply_presence_frequency, filter_top
from rnnchat.core.errors import SamplingError
from rnnchat.core.params import SamplingParams


def test_presence_and_frequency_subtract_as_defined():
    x = np.array([1.0, 2.0, 0.5, -1.0], np.float32)
    counts = np.array([0, 3, 1, 0], np.float32)
    got = apply_presence_frequency(x, counts, 0.5, 0.25)
    np.testing.assert_allclose(got, [1.0, 2.0 - 0.5 - 3 * 0.25, 0.5 - 0.5 - 0.25, -1.0], rtol=0, atol=1e-6)
    # negative values encourage what was written
    np.testing.assert_allclose(apply_presence_frequency(x, counts, -1.0, 0.0), [1.0, 3.0, 1.5, -1.0])


def greedy_choices(n: int, **penalties) -> list[int]:
    s = Sampler(SamplingParams(temperature=0, **penalties), seed=0)
    s.remember([0, 0, 0])  # the prompt is not the reply: it is not counted
    logits = np.array([2.0, 1.8, 0.0], np.float32)
    return [s(logits)[0] for _ in range(n)]


def test_presence_is_flat_and_frequency_grows_with_the_count():
    assert greedy_choices(5) == [0] * 5
    # presence: once both were written both cost 0.3, and 0 leads again for good
    assert greedy_choices(5, presence_penalty=0.3) == [0, 1, 0, 0, 0]
    # frequency: each use costs 0.3 more, so the two take turns
    assert greedy_choices(5, frequency_penalty=0.3) == [0, 1, 0, 1, 0]


def test_min_p_keeps_what_is_at_least_min_p_times_the_likeliest():
    probs = np.array([0.5, 0.3, 0.14, 0.06], np.float32)
    assert filter_top(probs, 0, 1.0, 0.25).nonzero()[0].tolist() == [0, 1, 2]
    assert filter_top(probs, 0, 1.0, 0.6).nonzero()[0].tolist() == [0, 1]
    assert filter_top(probs, 0, 1.0, 0.0).nonzero()[0].tolist() == [0, 1, 2, 3]
    t = filter_top(torch.tensor([0.5, 0.3, 0.14, 0.06]), 0, 1.0, 0.25)  # tensors too
    assert t.nonzero().flatten().tolist() == [0, 1, 2]


class FrozenCounts(Sampler):
    """A sampler whose reply so far is fixed: the same distribution at every draw."""

    def accept(self, i: int) -> None:
        pass


def expected(logits, history, temperature, min_p=0.0, presence=0.0, frequency=0.0):
    """The definition, written independently in float64 torch."""
    x = torch.as_tensor(logits, dtype=torch.float64)
    counts = torch.bincount(torch.tensor(history), minlength=x.numel()).double()
    x = x - presence * (counts > 0).double() - frequency * counts
    p = torch.softmax(x / temperature, 0)
    p = torch.where(p >= min_p * p.max(), p, 0.0)
    return (p / p.sum()).numpy()


@pytest.mark.parametrize("knobs", [dict(temperature=1.0, min_p=0.2), dict(temperature=1.3, presence_penalty=1.2),
                                   dict(temperature=0.8, frequency_penalty=0.7, min_p=0.05),
                                   dict(temperature=1.0, presence_penalty=-0.8, frequency_penalty=0.4)])
def test_the_sampler_draws_from_the_penalised_distribution(knobs):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=12).astype(np.float32) * 1.5
    history = [0, 1, 1, 3, 3, 3, 7]
    s = FrozenCounts(SamplingParams(seed=5, **knobs))
    for i in history:
        Sampler.accept(s, i)
    n = 12000
    counts = np.bincount([s(logits)[0] for _ in range(n)], minlength=12)
    want = expected(logits, history, knobs["temperature"], knobs.get("min_p", 0.0),
                    knobs.get("presence_penalty", 0.0), knobs.get("frequency_penalty", 0.0))
    assert counts[want == 0].sum() == 0
    live = want > 0
    chi2 = float((((counts[live] - n * want[live]) ** 2) / (n * want[live])).sum())
    dof = int(live.sum()) - 1
    assert chi2 < dof + 6 * (2 * dof) ** 0.5 + 10  # far in the tail only if the sampler is wrong


@pytest.mark.parametrize("field,bad", [("min_p", 1.0), ("min_p", -0.1), ("min_p", float("nan")),
                                       ("presence_penalty", 2.5), ("presence_penalty", float("inf")),
                                       ("frequency_penalty", -3), ("frequency_penalty", "1"), ("min_p", True)])
def test_out_of_range_values_are_errors(field, bad):
    with pytest.raises(SamplingError, match=field.replace("_", " ").replace("min p", "min-p")):
        SamplingParams(**{field: bad}).validate()


# What these settings gave before min-p and the presence and frequency penalties existed: the
# tiny model of tests/conftest.py (hidden 8, seed 0), prompt "BOB:\n", 120 characters. Recorded
# with the code of e8a2839 (before these values existed), the same on the NumPy and the torch
# path; the model's weights no longer depend on which plugins are installed (cell_probe.rng_kept).
BEFORE = {
    "plain": (dict(temperature=1.0, seed=3),
              'BaIee!\nrCByOrRg:gsTlh!mdE sRltluLoNut,.AvNeESLIddthusyh:svtclArcD!sy!nM:Ems e lHtySyE!d ?Me: sHvtLOTgdcevSNlBEyTa\nMd\neg!'),
    "shaped": (dict(temperature=0.7, top_k=6, top_p=0.9, repetition_penalty=1.2, seed=11),
               'glvIll!Ill!?!ml!vvlg!!g!!?!IIvlgIgIIvvvt???!lIvIvv!?vIvI!gl?!?vl!?!!l!gI!l!g!IIIvm?v?Ivg!v??l??!!g?gIIvIlv!!vt?!lv!vvgI!'),
    "greedy": (dict(temperature=0, repetition_penalty=1.5, seed=1),
               '!l!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'),
}


def text_of(engine, params) -> str:
    logits, state = engine.feed(engine.encode("BOB:\n").ids, engine.initial_state())
    return "".join(t.char for t in engine.stream(logits, state, params))


@pytest.mark.parametrize("fast", [True, False], ids=["numpy", "torch"])
def test_with_everything_off_a_seed_gives_the_same_text_as_before(make_checkpoint, fast):
    engine = Engine(load_checkpoint(make_checkpoint("lstm")), "cpu", fast=fast)
    for name, (knobs, before) in BEFORE.items():
        params = SamplingParams(max_chars=120, **knobs)
        now = text_of(engine, params)
        off = text_of(engine, params.replace(min_p=0.0, presence_penalty=0.0, frequency_penalty=0.0))
        assert now == off == before, name
        assert text_of(engine, params.replace(min_p=0.5, temperature=1.0)) != now or name == "greedy"


def test_the_penalties_follow_a_live_change(make_checkpoint):
    """Turned on in the middle of a stream, the penalties count the reply from its start."""
    from rnnchat.core.params import LiveParams

    engine = Engine(load_checkpoint(make_checkpoint("lstm")), "cpu")
    live = LiveParams(SamplingParams(temperature=0, max_chars=60))
    logits, state = engine.feed(engine.encode("BOB:\n").ids, engine.initial_state())
    sampler = Sampler(live.current, seed=0)
    out = []
    for i, tok in enumerate(engine.stream(logits, state, live, sampler)):
        out.append(tok.char)
        if i == 19:
            live.update(frequency_penalty=2.0)
    counts = sampler.chosen_counts(len(engine.vocab))
    assert counts.sum() == 60
    plain = text_of(engine, SamplingParams(temperature=0, max_chars=60))
    assert "".join(out)[:20] == plain[:20] and "".join(out) != plain


def test_generate_takes_the_new_options(make_checkpoint):
    from click.testing import CliRunner

    from rnnchat.commands.generate import generate

    path = str(make_checkpoint())
    base = ["BOB:", "--model", path, "--seed", "3", "-n", "60", "--temperature", "1"]
    run = CliRunner().invoke
    plain = run(generate, base)
    again = run(generate, base + ["--min-p", "0", "--presence-penalty", "0", "--frequency-penalty", "0"])
    shaped = run(generate, base + ["--min-p", "0.3", "--presence-penalty", "1.5", "--frequency-penalty", "0.5"])
    assert plain.exit_code == again.exit_code == shaped.exit_code == 0, shaped.output
    assert again.stdout == plain.stdout and len(shaped.stdout) == 60 and shaped.stdout != plain.stdout
    for args, pattern in ((["--min-p", "1"], "1 is too large (must be < 1)"),
                          (["--presence-penalty", "2.5"], "--presence-penalty"),
                          (["--frequency-penalty", "nan"], "not a finite number")):
        r = run(generate, ["x", "--model", path, *args])
        assert r.exit_code == 2 and pattern in r.output, r.output


def test_the_server_reads_them_into_the_same_params():
    from rnnchat.serve.requests import ApiError, parse

    req = parse({"model": "m", "prompt": "a", "min_p": 0.1, "presence_penalty": 0.5, "frequency_penalty": -1},
                "completion")
    p = req.params
    assert (p.min_p, p.presence_penalty, p.frequency_penalty) == (0.1, 0.5, -1)
    for field, bad in (("min_p", 1), ("presence_penalty", 3), ("frequency_penalty", "x")):
        with pytest.raises(ApiError) as e:
            parse({"model": "m", "prompt": "a", field: bad}, "completion")
        assert e.value.status == 400 and e.value.param == field


def test_the_counts_of_a_long_reply_stay_exact():
    from rnnchat.engine.sampling import PENDING_LIMIT

    s = Sampler(SamplingParams(seed=0))
    ids = [i % 7 for i in range(PENDING_LIMIT * 2 + 5)] + [9]
    for i in ids:
        s.accept(i)
    assert len(s._pending) < PENDING_LIMIT  # counted on the way, not kept as a list
    np.testing.assert_array_equal(s.chosen_counts(12), np.bincount(ids, minlength=12))
    assert s.chosen_counts(12).dtype == np.float32
