"""bf16 and int8 weights: close to fp32 (a stated tolerance), the same text for a seed on every
run and every thread count, ``auto`` only from a recorded measurement."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnchat.engine.batched import BatchedModel, Weights
from rnnchat.engine.blas import set_blas_threads
from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.generate import Engine
from rnnchat.engine.quant import Linear, bf16_scales, own_int8_kernel, resolve, set_threads, vnni_kernel
from rnnchat.core.errors import SettingError
from rnnchat.core.params import SamplingParams

from tests.conftest import run_cli
from tests.speed.test_fast_path import CELLS, PROMPT, run

# a quantised model's logits stay within this of fp32's (tiny models, hidden 8: measured <= 0.004)
LOGIT_TOLERANCE = {"bf16": 0.02, "int8": 0.02}


def random_state(model, gen):
    def r(t):
        return (torch.rand(t.shape, generator=gen) * 2 - 1) * 0.5
    return [tuple(r(t) for t in s) if isinstance(s, tuple) else r(s) for s in model.initial_state(1)]


@pytest.mark.parametrize("cell,options", CELLS)
@pytest.mark.parametrize("fmt", ["fp32", "bf16", "int8"])
def test_logits_within_tolerance_of_fp32(make_checkpoint, cell, options, fmt):
    model = load_checkpoint(make_checkpoint(cell, cell_options=options)).model.eval()
    gen = torch.Generator().manual_seed(1)
    state = random_state(model, gen)
    bm = BatchedModel(Weights(model, fmt))
    bm.add(state)
    tol = LOGIT_TOLERANCE.get(fmt, 1e-5)
    with torch.inference_mode():
        for i in [3, 1, 4, 1, 5, 9, 2, 6]:
            ref, state = model.step(torch.tensor([i]), state)
            got = bm.step(np.array([i]))[0]
            np.testing.assert_allclose(got, ref[0].numpy(), atol=tol, rtol=0)
    if fmt != "fp32":  # not trivially equal either: the format is really in use
        assert not np.array_equal(got, ref[0].numpy())


def test_int8_rows_use_exact_scales_and_stay_in_range():
    w = np.random.default_rng(0).standard_normal((40, 24)).astype(np.float32)
    w[3] = 0.0
    lin = Linear(w, "int8")
    q = lin.w.numpy()
    assert q.dtype == np.int8 and np.abs(q).max() <= 127
    scales = bf16_scales(np.pad(w, ((0, 0), (0, 8))))
    assert (scales >= np.abs(w).max(1) / 127).all()
    assert np.array_equal(lin.scales.float().numpy(), scales)  # bf16 in the kernel, exactly
    err = np.abs(lin.dequantised()[:, :24] - w)
    assert (err <= scales[:, None] / 2 + 1e-7).all()
    x = np.zeros((1, lin.cols), np.float32)
    x[0, :24] = np.random.default_rng(1).standard_normal(24)
    out = np.empty((1, 40), np.float32)
    lin(x, np.zeros(40, np.float32), out)
    xb = torch.from_numpy(x).bfloat16().float().numpy()
    exact = xb @ lin.dequantised().T
    np.testing.assert_allclose(out, exact, rtol=2 ** -7, atol=1e-6)  # the kernel's bf16 result


@pytest.mark.parametrize("fmt", ["bf16", "int8"])
def test_same_text_for_a_seed_on_every_run_and_thread_count(make_checkpoint, fmt):
    path = make_checkpoint("lstm", hidden=32, embedding=8)
    params = SamplingParams(temperature=1.0, top_k=10, seed=7, max_chars=200)
    texts = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2, 1, 2):
            torch.set_num_threads(threads)
            set_blas_threads(threads)
            engine = Engine(load_checkpoint(path), "cpu", weights=fmt)
            texts.append(run(engine, params)[0])
    finally:
        torch.set_num_threads(before)
        set_blas_threads(1)
    assert len(set(texts)) == 1 and len(texts[0]) == 200


def test_stream_state_continues_on_quantised_weights(make_checkpoint):
    engine = Engine(load_checkpoint(make_checkpoint("gru")), "cpu", weights="int8")
    params = SamplingParams(temperature=1.0, seed=3, max_chars=30)
    whole = run(engine, SamplingParams(temperature=1.0, seed=3, max_chars=60))[0]
    first, s1 = run(engine, params)
    second = "".join(t.char for t in engine.stream(s1.logits, s1.state, params, sampler=s1.sampler))
    assert first + second == whole


def test_auto_needs_a_recorded_cost_below_the_threshold(make_checkpoint):
    assert resolve("auto", {}) == "fp32"
    assert resolve("auto", {"weights_cost": json.dumps({"int8": 0.0015, "bf16": 0.0001})}) == "int8"
    assert resolve("auto", {"weights_cost": json.dumps({"int8": 0.004, "bf16": 0.0001})}) == "bf16"
    for bad in ("{", "[1]", json.dumps({"int8": "0.001"}), json.dumps({"int8": True}), "x" * 2000):
        assert resolve("auto", {"weights_cost": bad}) == "fp32"
    with pytest.raises(SettingError, match="weights must be one of"):
        resolve("int4", {})
    path = make_checkpoint("lstm", weights_cost={"int8": 0.001})
    assert Engine(load_checkpoint(path), "cpu").weights == "int8"
    assert Engine(load_checkpoint(make_checkpoint("rnn", name="plain")), "cpu").weights == "fp32"


def test_cli_weights_option(make_checkpoint):
    path = str(make_checkpoint("lstm"))
    args = ("generate", PROMPT, "-m", path, "--seed", "4", "-n", "60", "--weights", "int8", "--stats")
    a = run_cli(*args)
    assert a.returncode == 0 and "int8 weights" in a.stderr
    engine = Engine(load_checkpoint(path), "cpu", weights="int8")
    assert a.stdout == run(engine, SamplingParams(seed=4, max_chars=60))[0]


needs_vnni = pytest.mark.skipif(not vnni_kernel(), reason="no fbgemm VNNI int8 kernel on this CPU/torch")


@needs_vnni
def test_vnni_kernel_is_exact_integer_products_and_row_independent():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((72, 40)).astype(np.float32) * 0.2
    lin = Linear(w, "int8", bounded=True)
    assert lin.kernel.startswith("vnni") and Linear(w, "int8").kernel == "bf16-input"
    x = np.zeros((5, lin.cols), np.float32)
    x[:, :40] = rng.uniform(-1, 1, (5, 40))
    x[0, :3] = (1.0, -1.0, 0.0)  # the ends of the range are represented
    add = rng.standard_normal(72).astype(np.float32)
    out = np.empty((5, 72), np.float32)
    lin(x, add, out)
    xq = np.clip(np.rint(x * 127) + 128, 0, 255) - 128  # 8-bit input, zero point 128, scale 1/127
    exact = (xq.astype(np.float64) / 127) @ lin.dequantised().astype(np.float64).T + add
    np.testing.assert_allclose(out, exact, rtol=1e-5, atol=1e-5)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            set_threads(threads)
            for r in range(5):  # one row alone gives the row's result in the batch, bit for bit
                one = np.empty((1, 72), np.float32)
                lin(np.ascontiguousarray(x[r:r + 1]), add, one)
                assert np.array_equal(one[0], out[r])
    finally:
        set_threads(before)


@needs_vnni
@pytest.mark.parametrize("cell,options", CELLS)
def test_int8_weights_take_the_vnni_kernel_where_inputs_are_bounded(make_checkpoint, cell, options):
    model = load_checkpoint(make_checkpoint(cell, cell_options=options)).model
    w = Weights(model, "int8")
    kernels = {lin.kernel for layer in w.layers for lin in layer.linears}
    vnni = {"vnni+rnnchat"} if own_int8_kernel() else {"vnni"}
    assert kernels == ({"bf16-input"} if options.get("nonlinearity") == "relu" else vnni)
    assert w.head.fmt == "fp32"  # a small head costs less read in fp32 than a kernel call


@pytest.mark.parametrize("fmt", ["fp32", "bf16", "int8"])
def test_batched_logits_are_the_same_bits_on_1_and_2_threads(make_checkpoint, fmt):
    # hidden 128: the second layer's matrix (512 x 256, 512 KB in fp32) is past quant.SMALL, so
    # several rows take oneDNN's product (fp32, bf16) or fbgemm's (int8), not OpenBLAS's
    model = load_checkpoint(make_checkpoint("lstm", hidden=128, embedding=8)).model.eval()
    weights = Weights(model, fmt)
    assert weights.layers[1].lin.kernel in ("openblas+onednn", "onednn", "vnni", "vnni+rnnchat", "bf16-input")
    state = random_state(model, torch.Generator().manual_seed(2))
    runs = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            set_blas_threads(threads)
            bm = BatchedModel(weights)
            for _ in range(16):  # (OpenBLAS's small matrix-matrix product differed at 16 rows)
                bm.add(state)
            runs.append(np.stack([bm.step((np.arange(16) + i) % 20).copy() for i in range(8)]))
    finally:
        torch.set_num_threads(before)
        set_blas_threads(1)
    assert np.array_equal(runs[0], runs[1])


def test_a_small_fp32_product_is_the_same_bits_for_any_rows_and_threads():
    # the bundled model's head (65 x 512 + bias, padded to 528): OpenBLAS's matrix-matrix product
    # over 32 rows summed differently on 1 and 2 threads; one matrix-vector product per row does not
    rng = np.random.default_rng(3)
    lin = Linear(rng.standard_normal((65, 520)).astype(np.float32), "fp32")
    assert lin.kernel == "openblas"
    x = np.zeros((32, lin.cols), np.float32)
    x[:, :520] = rng.uniform(-1, 1, (32, 520))
    add = rng.standard_normal(65).astype(np.float32)
    outs = []
    try:
        for threads in (1, 2):
            set_blas_threads(threads)
            outs.append(lin(x, add, np.empty((32, 65), np.float32)).copy())
            one = lin(np.ascontiguousarray(x[5:6]), add, np.empty((1, 65), np.float32))
            assert np.array_equal(one[0], outs[-1][5])
    finally:
        set_blas_threads(1)
    assert np.array_equal(outs[0], outs[1])


def test_bf16_weights_on_a_cpu_that_cannot_are_one_line(monkeypatch):
    """Without AVX-512 or AVX-NE-CONVERT oneDNN refuses bf16 weights: a SettingError naming the
    way out, never its RuntimeError."""
    import numpy as np

    from rnnchat.engine import quant

    monkeypatch.setattr(quant, "bf16_weights_problem", lambda: "needs avx512bw")
    with pytest.raises(SettingError, match=r"bf16 weights do not run on this CPU \(needs avx512bw\); use --weights fp32"):
        quant.Linear(np.zeros((64, 64), np.float32), "bf16")
