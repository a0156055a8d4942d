"""Property-based: random values thrown at the sampler and at the CLI parsers never crash them."""

import math

import click
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnchat.commands.generate import generate
from rnnchat.commands.train import train
from rnnchat.engine.sampling import Sampler
from rnnchat.core.errors import SamplingError
from rnnchat.core.params import SamplingParams

anything = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**20, 10**20),
                     st.text(max_size=5), st.none(), st.booleans())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(temperature=anything, top_k=anything, top_p=anything, penalty=anything, seed=anything,
       logits=st.lists(st.floats(-50, 50), min_size=1, max_size=40))
def test_sampler_accepts_or_refuses_cleanly(temperature, top_k, top_p, penalty, seed, logits):
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p, repetition_penalty=penalty,
                            seed=seed)
    try:
        params.validate()
    except SamplingError:
        return
    sampler = Sampler(params)
    for _ in range(3):
        idx, prob = sampler(torch.tensor(logits))
        assert 0 <= idx < len(logits) and 0.0 <= prob <= 1.0 and math.isfinite(prob)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=10))
def test_invalid_logits_are_an_error_not_a_crash(values):
    logits = torch.tensor(values, dtype=torch.float32)
    try:
        idx, _ = Sampler(SamplingParams(temperature=1.0, seed=0))(logits)
    except SamplingError as exc:
        assert "invalid values" in str(exc)
        assert not torch.isfinite(logits).all()
    else:
        assert torch.isfinite(logits).all() and 0 <= idx < len(values)


OPTION_VALUES = st.one_of(st.text(max_size=8), st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e309", "1e-9",
                                                                "99999999999999999999", "0.5", "", " "]))


@settings(max_examples=300, deadline=None)
@given(option=st.sampled_from(["--temperature", "--top-k", "--top-p", "--repetition-penalty", "--seed",
                               "--max-chars"]), value=OPTION_VALUES)
def test_generate_parser_refuses_bad_values_with_a_usage_error(option, value):
    try:
        ctx = generate.make_context("generate", ["x", option, value])
    except click.UsageError:
        return  # click prints "Error: Invalid value for ..." and exits 2
    params = ctx.params
    for key in ("temperature", "top_p", "repetition_penalty"):
        assert math.isfinite(params[key])
    SamplingParams(temperature=params["temperature"], top_k=params["top_k"], top_p=params["top_p"],
                   repetition_penalty=params["repetition_penalty"], seed=params["seed"],
                   max_chars=params["max_chars"]).validate()


@settings(max_examples=300, deadline=None)
@given(option=st.sampled_from(["--layers", "--hidden", "--embedding", "--dropout", "--seq-len", "--batch-size",
                               "--lr", "--steps", "--budget", "--val-fraction", "--seed", "--max-vocab"]),
       value=OPTION_VALUES)
def test_train_parser_refuses_bad_values_with_a_usage_error(option, value):
    try:
        ctx = train.make_context("train", ["corpus.txt", option, value])
    except click.UsageError:
        return
    for key, v in ctx.params.items():
        if isinstance(v, float):
            assert math.isfinite(v), (key, v)
        if key in ("layers", "hidden", "embedding", "seq_len", "batch_size", "steps") and v is not None:
            assert v >= 1


@pytest.mark.parametrize("value", ["nan", "-1", "inf", "abc"])
def test_cli_bad_value_is_a_usage_line_not_a_traceback(value):
    from tests.conftest import run_cli

    r = run_cli("generate", "x", "--temperature", value)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "Invalid value" in r.stderr
