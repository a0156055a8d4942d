"""Sampling: temperature, top-k, top-p, repetition penalty, seeds, invalid values."""

import math

import pytest
import torch

from rnnchat.engine.sampling import Sampler, filter_top
from rnnchat.core.errors import SamplingError
from rnnchat.core.params import SamplingParams


def test_temperature_zero_is_argmax():
    s = Sampler(SamplingParams(temperature=0))
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    assert all(s(logits)[0] == 1 for _ in range(20))


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), 101, "hot", True])
def test_bad_temperature_is_an_error(bad):
    with pytest.raises(SamplingError, match="temperature"):
        SamplingParams(temperature=bad).validate()


@pytest.mark.parametrize("field,bad", [("top_k", -1), ("top_k", 1.5), ("top_p", 0.0), ("top_p", 1.5),
                                       ("top_p", float("nan")), ("repetition_penalty", 0),
                                       ("repetition_penalty", -2), ("max_chars", 0), ("seed", -1)])
def test_other_bad_values(field, bad):
    with pytest.raises(SamplingError):
        SamplingParams(**{field: bad}).validate()


def test_same_seed_same_choices():
    logits = torch.randn(30)
    a = Sampler(SamplingParams(temperature=1.0, seed=5))
    b = Sampler(SamplingParams(temperature=1.0, seed=5))
    assert [a(logits)[0] for _ in range(50)] == [b(logits)[0] for _ in range(50)]


def test_top_k_only_picks_the_k_best():
    logits = torch.tensor([5.0, 4.0, 3.0, 0.0, 0.0, 0.0])
    s = Sampler(SamplingParams(temperature=5.0, top_k=2, seed=0))
    assert {s(logits)[0] for _ in range(200)} == {0, 1}


def test_top_p_keeps_smallest_set_reaching_p():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    kept = filter_top(probs, 0, 0.7)
    assert kept.nonzero().flatten().tolist() == [0, 1]
    assert filter_top(probs, 0, 0.5).nonzero().flatten().tolist() == [0]
    assert filter_top(probs, 0, 1.0).nonzero().numel() == 4


def test_repetition_penalty_discourages_recent_characters():
    logits = torch.tensor([2.0, 1.9])
    s = Sampler(SamplingParams(temperature=0, repetition_penalty=2.0))
    first = s(logits)[0]
    assert first == 0
    assert s(logits)[0] == 1  # 0 was just used, its logit is halved


def test_probability_is_the_models_own():
    logits = torch.tensor([1.0, 2.0, 3.0])
    _, p = Sampler(SamplingParams(temperature=0))(logits)
    assert math.isclose(p, torch.softmax(logits, 0)[2].item(), rel_tol=1e-6)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_invalid_logits_give_clear_error(value):
    logits = torch.tensor([0.0, value, 1.0])
    with pytest.raises(SamplingError, match="model produced invalid values"):
        Sampler(SamplingParams())(logits)
