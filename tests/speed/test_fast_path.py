"""The fast per-character paths give the reference path's results (no timing here)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from rnnchat.engine.cells import LSTMCell
from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.fast import build_fast
from rnnchat.engine.generate import Engine
from rnnchat.engine.model import CharRNN, ModelConfig
from rnnchat.core.params import SamplingParams
from rnnchat.plugins import CellSpec
from rnnchat.plugins.manager import get_host
from tests.conftest import needs_cpu_bf16

CELLS = [("lstm", {}), ("gru", {}), ("rnn", {}), ("rnn", {"nonlinearity": "relu"})]
PROMPT = "ALICE:\nThe cat sat on the mat, and then"


def engines(make_checkpoint, cell, options, hidden=16):
    path = make_checkpoint(cell, hidden=hidden, embedding=6, cell_options=options)
    return Engine(load_checkpoint(path), "cpu"), Engine(load_checkpoint(path), "cpu", fast=False)


def run(engine, params):
    logits, state = engine.feed(engine.encode(PROMPT).ids, engine.initial_state())
    stream = engine.stream(logits, state, params)
    text = "".join(t.char for t in stream)
    return text, stream


def flat(state):
    return [t for s in state for t in (s if isinstance(s, tuple) else (s,))]


@pytest.mark.parametrize("cell,options", CELLS)
def test_builtin_cells_take_the_numpy_path(make_checkpoint, cell, options):
    fast, ref = engines(make_checkpoint, cell, options)
    assert fast.backend == "numpy" and ref.backend == "torch"


@pytest.mark.parametrize("cell,options", CELLS)
def test_same_greedy_text_logits_and_state(make_checkpoint, cell, options):
    fast, ref = engines(make_checkpoint, cell, options)
    params = SamplingParams(temperature=0, max_chars=300)
    a, sa = run(fast, params)
    b, sb = run(ref, params)
    assert a == b and len(a) == 300
    torch.testing.assert_close(sa.logits, sb.logits, rtol=1e-4, atol=1e-4)
    for x, y in zip(flat(sa.state), flat(sb.state)):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell,options", CELLS)
@pytest.mark.parametrize("knobs", [dict(temperature=1.0), dict(temperature=0.7, top_k=5),
                                   dict(temperature=1.3, top_p=0.8, repetition_penalty=1.3),
                                   dict(temperature=1.1, min_p=0.05, presence_penalty=0.4, frequency_penalty=0.2)])
def test_same_seed_same_text(make_checkpoint, cell, options, knobs):
    fast, ref = engines(make_checkpoint, cell, options)
    a, _ = run(fast, SamplingParams(seed=11, max_chars=300, **knobs))
    b, _ = run(ref, SamplingParams(seed=11, max_chars=300, **knobs))
    assert a == b


def test_state_after_fast_stream_continues_exactly(make_checkpoint):
    fast, ref = engines(make_checkpoint, "lstm", {})
    params = SamplingParams(temperature=1.0, seed=3, max_chars=40)
    _, s1 = run(fast, params)
    text2 = "".join(t.char for t in fast.stream(s1.logits, s1.state, params))
    _, r1 = run(ref, params)
    ref2 = "".join(t.char for t in ref.stream(r1.logits, r1.state, params))
    assert text2 == ref2


def test_stop_sequences_on_the_fast_path(make_checkpoint):
    fast, ref = engines(make_checkpoint, "gru", {})
    params = SamplingParams(temperature=1.0, seed=5, max_chars=400, stop=("e ", "\n"))
    a, sa = run(fast, params)
    b, sb = run(ref, params)
    assert a == b and sa.reason == sb.reason


def test_fast_path_off_by_environment(make_checkpoint, monkeypatch):
    monkeypatch.setenv("RNNCHAT_FAST", "0")
    engine = Engine(load_checkpoint(make_checkpoint("lstm")), "cpu")
    assert engine.backend == "torch"


class ThirdPartyLSTM(LSTMCell):
    """A subclass: the built-in NumPy layer must not assume it behaves like LSTMCell."""

    def step(self, x, state):
        h, (h2, c) = super().step(x, state)
        return h * 0.5, (h * 0.5, c)


def model_with(cell_class, name):
    torch.manual_seed(0)
    return CharRNN(ModelConfig(cell=name, vocab_size=12, hidden=8, layers=2, embedding=4), cell_class=cell_class)


def test_third_party_cell_without_fast_path_uses_its_own_step():
    get_host().cells["halved"] = CellSpec("halved", ThirdPartyLSTM)
    assert build_fast(model_with(ThirdPartyLSTM, "halved"), torch.device("cpu"), "halved") is None


def halved_fast_path(cell, device):
    """A correct third-party fast path: the built-in LSTM layer with h halved."""
    from rnnchat.engine.fast_cpu import NumpyLSTM

    class Halved(NumpyLSTM):
        def _finish(self, s):
            h = super()._finish(s)
            np.multiply(h, 0.5, out=h)
            return h

    return Halved(cell)


def wrong_fast_path(cell, device):
    from rnnchat.engine.fast_cpu import NumpyLSTM

    return NumpyLSTM(cell)  # ignores the halving: must be caught by the load-time check


def test_third_party_fast_path_is_used_and_checked():
    get_host().cells["halved"] = CellSpec("halved", ThirdPartyLSTM, fast_path=f"{__name__}:halved_fast_path")
    model = model_with(ThirdPartyLSTM, "halved")
    fm = build_fast(model, torch.device("cpu"), "halved")
    assert fm is not None and fm.backend == "numpy"
    st = fm.new_state(model.initial_state(1))
    state = model.initial_state(1)
    with torch.inference_mode():
        for i in [1, 5, 7, 2]:
            ref, state = model.step(torch.tensor([i]), state)
            np.testing.assert_allclose(st.step(i), ref[0].numpy(), rtol=1e-5, atol=1e-6)


def test_a_wrong_fast_path_is_refused_with_a_warning():
    get_host().cells["halved"] = CellSpec("halved", ThirdPartyLSTM, fast_path=f"{__name__}:wrong_fast_path")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert build_fast(model_with(ThirdPartyLSTM, "halved"), torch.device("cpu"), "halved") is None
    assert any("disagrees" in str(w.message) for w in caught)


def test_a_broken_fast_path_is_refused_with_a_warning():
    get_host().cells["halved"] = CellSpec("halved", ThirdPartyLSTM, fast_path="no_such_module_xyz:build")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert build_fast(model_with(ThirdPartyLSTM, "halved"), torch.device("cpu"), "halved") is None
    assert any("failed to build" in str(w.message) for w in caught)


@needs_cpu_bf16("lstm")
def test_bf16_prompt_reading_keeps_fp32_state_and_is_close(make_checkpoint):
    path = make_checkpoint("lstm", hidden=16, embedding=6)
    exact = Engine(load_checkpoint(path), "cpu", prompt_precision="fp32")
    quick = Engine(load_checkpoint(path), "cpu", prompt_precision="bf16")
    ids = exact.encode(PROMPT * 8).ids
    assert len(ids) >= 128
    a, sa = exact.feed(ids, exact.initial_state())
    b, sb = quick.feed(ids, quick.initial_state())
    assert b.dtype == torch.float32 and all(t.dtype == torch.float32 for t in flat(sb))
    torch.testing.assert_close(torch.softmax(b, 0), torch.softmax(a, 0), atol=0.02, rtol=0)
    short = exact.encode(PROMPT).ids  # short prompts are read in fp32 whatever the setting
    torch.testing.assert_close(quick.feed(short, quick.initial_state())[0], exact.feed(short, exact.initial_state())[0])


@pytest.mark.parametrize("cell, native, expected", [
    ("lstm", True, "bf16"), ("lstm", False, "fp32"), ("gru", True, "fp32"), ("rnn", True, "fp32")])
def test_auto_prompt_precision_is_bf16_only_for_lstm_on_a_cpu_with_native_bf16(
        make_checkpoint, monkeypatch, cell, native, expected):
    import rnnchat.engine.precision as precision

    monkeypatch.setattr(precision, "cpu_bf16_fast", lambda: native)
    monkeypatch.delenv("RNNCHAT_PROMPT_PRECISION", raising=False)
    engine = Engine(load_checkpoint(make_checkpoint(cell)), "cpu")
    assert engine.prompt_precision == expected
    assert engine.set_prompt_precision("fp32") == "fp32" and engine.set_prompt_precision("auto") == expected
    monkeypatch.setenv("RNNCHAT_PROMPT_PRECISION", "fp32")
    assert Engine(load_checkpoint(make_checkpoint(cell)), "cpu").prompt_precision == "fp32"


def test_explicit_bf16_where_the_cpu_cannot_run_it_is_one_line_and_auto_is_fp32(make_checkpoint, monkeypatch):
    import rnnchat.engine.precision as precision
    from rnnchat.core.errors import SettingError

    problem = "lstm: could not create a primitive descriptor for the LSTM forward propagation primitive"
    monkeypatch.setattr(precision, "cpu_bf16_problem", lambda kinds=precision.BUILTIN_KINDS: problem)
    monkeypatch.delenv("RNNCHAT_PROMPT_PRECISION", raising=False)
    loaded = load_checkpoint(make_checkpoint("lstm"))
    with pytest.raises(SettingError) as err:
        Engine(loaded, "cpu", prompt_precision="bf16")
    assert str(err.value) == f"prompt precision bf16 does not run on this CPU ({problem}); use fp32 or auto"
    engine = Engine(loaded, "cpu")
    assert engine.prompt_precision == "fp32"
    with pytest.raises(SettingError, match="^--prompt-precision bf16 does not run on this CPU"):
        engine.set_prompt_precision("bf16", "--prompt-precision")
    assert precision.auto_precision(torch.device("cpu")) == "fp32"
    with pytest.raises(SettingError, match="^--precision bf16 does not run on this CPU"):
        precision.check_precision("bf16", "cpu", cell="gru")
    assert precision.check_precision("fp32", "cpu") == "fp32"


def test_a_bad_prompt_precision_setting_is_one_line_in_the_cli(make_checkpoint):
    from tests.conftest import run_cli

    r = run_cli("generate", "-m", str(make_checkpoint("lstm")), "-n", "3", "Cat",
                env={"RNNCHAT_PROMPT_PRECISION": "fp8"})
    assert r.returncode == 1
    assert r.stderr.strip() == "error: RNNCHAT_PROMPT_PRECISION must be auto, fp32 or bf16, not 'fp8'"


BUNDLED = __import__("pathlib").Path(__file__).resolve().parents[2] / "rnnchat/default_plugins/models/shakespeare.safetensors"


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled model not present")
def test_bundled_model_fast_path_matches_reference():
    fast = Engine(load_checkpoint(BUNDLED), "cpu")
    ref = Engine(load_checkpoint(BUNDLED), "cpu", fast=False)
    assert fast.backend == "numpy"
    for params in (SamplingParams(temperature=0, max_chars=120),
                   SamplingParams(temperature=0.8, top_p=0.95, seed=2, max_chars=120)):
        a, sa = run(fast, params)
        b, _ = run(ref, params)
        assert a == b
