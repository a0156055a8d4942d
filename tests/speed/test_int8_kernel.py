"""rnnchat's own one-row int8 kernel (rnnchat/engine/_int8.c): fbgemm's numbers bit for bit, on
any thread count, from any thread, after a fork; bad arguments get an error, never a crash."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest
import torch

from rnnchat.engine.quant import X_SCALE, Linear, dense_module, own_int8_kernel, set_threads, vnni_kernel

needs_kernel = pytest.mark.skipif(own_int8_kernel() is None or not vnni_kernel(),
                                  reason="rnnchat's int8 kernel was not built here, or this CPU lacks AVX-512 VNNI")
SHAPES = [(72, 40), (5, 16), (2048, 1040), (130, 512)]


def inputs(rng, n, cols, d):
    x = np.zeros((n, cols), np.float32)
    x[:, :d] = rng.uniform(-1, 1, (n, d))
    x[0, :4] = (1.0, -1.0, 0.0, 0.5 / 127)            # the ends of the range, a halfway point
    x[1, :d] = np.round(x[1, :d] * 254) / 254          # every value a halfway point of the 8-bit grid
    return x


def fbgemm(lin, x, add):
    """fbgemm's op over the rows, then NumPy's add: what several streams compute."""
    y = lin._op(torch.from_numpy(x), X_SCALE, 128, lin.packed).numpy()
    return y + add


@needs_kernel
@pytest.mark.parametrize("shape", SHAPES)
def test_one_row_equals_fbgemm_bit_for_bit_on_every_thread_count(shape):
    rng = np.random.default_rng(shape[0])
    n, d = shape
    lin = Linear((rng.standard_normal(shape) * 0.3).astype(np.float32), "int8", bounded=True)
    assert lin.kernel == "vnni+rnnchat"
    x = inputs(rng, 17, lin.cols, d)  # several rows: groups of eight over the packed copy, a tail of one
    add = rng.standard_normal(n).astype(np.float32)
    ref = fbgemm(lin, x, add)
    try:
        for threads in (1, 2, 3, 8):
            set_threads(threads)
            for r in range(len(x)):
                out = np.empty((1, n), np.float32)
                lin(np.ascontiguousarray(x[r:r + 1]), add, out)
                assert np.array_equal(out[0], ref[r]), (threads, r)
                lin(np.ascontiguousarray(x[r:r + 1]), add[None, :], out)  # a [1, N] addend (a table row)
                assert np.array_equal(out[0], ref[r])
            for k in (2, 8, 9, 17):  # the kernel's several-row form (the packed weights)
                every = np.empty((k, n), np.float32)
                lin.row(x[:k], add, every, threads)
                assert np.array_equal(every, ref[:k]), (threads, k)
                lin.row(x[:k], np.repeat(add[None, :], k, 0), every, threads)
                assert np.array_equal(every, ref[:k])
    finally:
        set_threads(1)


@needs_kernel
def test_two_python_threads_at_once_get_their_own_results():
    rng = np.random.default_rng(5)
    lins = [Linear((rng.standard_normal((300, 200)) * 0.3).astype(np.float32), "int8", bounded=True)
            for _ in range(2)]
    xs = [inputs(rng, 4, lin.cols, 200) for lin in lins]
    add = np.zeros(300, np.float32)
    refs = [fbgemm(lin, x, add) for lin, x in zip(lins, xs)]
    bad = []

    def work(k):
        for _ in range(300):
            for r in range(4):
                out = np.empty((1, 300), np.float32)
                lins[k](np.ascontiguousarray(xs[k][r:r + 1]), add, out)
                if not np.array_equal(out[0], refs[k][r]):
                    bad.append((k, r))

    set_threads(2)
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        set_threads(1)
    assert not bad and not any(t.is_alive() for t in threads)


def _child(queue):
    rng = np.random.default_rng(7)
    lin = Linear((rng.standard_normal((256, 128)) * 0.3).astype(np.float32), "int8", bounded=True)
    x = np.ascontiguousarray(inputs(rng, 2, lin.cols, 128)[1:])
    set_threads(2)
    out = np.empty((1, 256), np.float32)
    lin(x, np.zeros(256, np.float32), out)
    queue.put(out.tobytes())


@needs_kernel
def test_a_forked_child_starts_its_own_workers():
    set_threads(2)  # the parent's workers exist before the fork
    try:
        lin = Linear(np.ones((256, 128), np.float32) * 0.1, "int8", bounded=True)
        lin(np.zeros((1, lin.cols), np.float32), np.zeros(256, np.float32), np.empty((1, 256), np.float32))
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(queue,))
        proc.start()
        got = queue.get(timeout=60)
        proc.join(timeout=60)
    finally:
        set_threads(1)
    expected_queue = multiprocessing.get_context("fork").Queue()
    _child(expected_queue)
    assert proc.exitcode == 0 and got == expected_queue.get(timeout=10)


@needs_kernel
def test_bad_arguments_are_errors_not_crashes():
    mod = own_int8_kernel()
    w = np.zeros((8, 64), np.int8)
    wsum, mult = np.zeros(8, np.int32), np.ones(8, np.float32)
    m = mod.Matrix(w, wsum, mult, X_SCALE)
    x, add, out = np.zeros(64, np.float32), np.zeros(8, np.float32), np.empty(8, np.float32)
    assert m(x, add, out, 1) is out
    with pytest.raises(ValueError, match="threads"):
        m(x, add, out, 0)
    with pytest.raises(ValueError, match="threads"):
        m(x, add, out, 9)
    with pytest.raises(ValueError):
        m(np.zeros(65, np.float32), add, out, 1)      # more inputs than columns
    with pytest.raises(ValueError):
        m(x, np.zeros(7, np.float32), out, 1)         # a short addend
    with pytest.raises(TypeError):
        m(x.astype(np.float64), add, out, 1)
    with pytest.raises(ValueError):
        m(np.zeros((2, 64), np.float32), add, out, 1)  # two input rows, one output row
    with pytest.raises(ValueError):
        m(np.zeros((2, 64), np.float32), np.zeros((3, 8), np.float32), np.empty((2, 8), np.float32), 1)
    with pytest.raises(ValueError):
        m(np.zeros((0, 64), np.float32), add, np.empty((0, 8), np.float32), 1)  # no rows
    with pytest.raises(TypeError):
        m(np.zeros((1, 1, 64), np.float32), add, out, 1)
    with pytest.raises((TypeError, ValueError)):
        m(x, add, np.empty(16, np.float32)[::2], 1)   # not contiguous
    with pytest.raises((TypeError, ValueError, BufferError)):
        m(x, add, np.frombuffer(bytes(32), np.float32), 1)  # read-only
    with pytest.raises(ValueError):
        mod.Matrix(np.zeros((8, 60), np.int8), wsum, mult, X_SCALE)   # columns not a multiple of 64
    with pytest.raises(ValueError):
        mod.Matrix(w, np.zeros(7, np.int32), mult, X_SCALE)
    with pytest.raises(ValueError):
        mod.Matrix(w, wsum, mult, 0.0)
    with pytest.raises(TypeError):
        mod.Matrix(w.astype(np.int16), wsum, mult, X_SCALE)
    with pytest.raises(RuntimeError):
        mod.Matrix.__new__(mod.Matrix)(x, add, out, 1)  # never initialised


@needs_kernel
def test_an_lstm_layer_in_one_call_is_the_layers_own_step_bit_for_bit(make_checkpoint):
    from rnnchat.engine.batched import BatchedModel, Weights
    from rnnchat.engine.checkpoint import load_checkpoint

    # hidden 128: the products are past quant.SMALL, so they take the int8 kernels
    model = load_checkpoint(make_checkpoint("lstm", hidden=128, embedding=8)).model.eval()
    weights = Weights(model, "int8")
    assert all(layer.fused is not None for layer in weights.layers) and "+lstm" in weights.kernels
    gen = torch.Generator().manual_seed(4)
    state = [tuple((torch.rand(t.shape, generator=gen) * 2 - 1) * 0.5 for t in s) for s in model.initial_state(1)]
    texts = []
    for fused in (True, False):
        for layer in weights.layers:
            layer.fused = layer.lin.row.lstm if fused else None
        bm = BatchedModel(weights)
        bm.add(state)
        ids = np.array([3])
        out = []
        for _ in range(40):  # greedy: any difference in any bit would show up in the logits
            logits = bm.step(ids)
            out.append(logits.copy())
            ids = np.array([int(logits[0].argmax())])
        texts.append(np.stack(out))
    assert np.array_equal(texts[0], texts[1])


@needs_kernel
def test_the_lstm_call_refuses_bad_arguments():
    mod = own_int8_kernel()
    assert mod.fused_lstm
    H = 16
    m = mod.Matrix(np.zeros((4 * H, 64), np.int8), np.zeros(4 * H, np.int32), np.ones(4 * H, np.float32), X_SCALE)
    v, add, g = np.zeros(64, np.float32), np.zeros(4 * H, np.float32), np.zeros(4 * H, np.float32)
    c, tmp = np.zeros(H, np.float32), np.zeros(H, np.float32)
    assert m.lstm(None, v, add, g, c, tmp, 1) is None
    assert np.array_equal(g[:3 * H], np.full(3 * H, 0.5, np.float32))  # sigmoid(0) through the halved tanh
    assert m.lstm(np.ones(8, np.float32), v, add, g, c, tmp, 2) is None
    assert np.array_equal(v[:8], np.ones(8, np.float32))                # the lower layer's h copied in
    with pytest.raises(ValueError):
        m.lstm(None, v, add, g, np.zeros(H + 1, np.float32), tmp, 1)
    with pytest.raises(ValueError):
        m.lstm(np.ones(60, np.float32), v, add, g, c, tmp, 1)           # below + H past v
    with pytest.raises(ValueError):
        m.lstm(None, v, add, g, c, tmp, 0)
    with pytest.raises(TypeError):
        m.lstm(None, v.astype(np.float64), add, g, c, tmp, 1)
    rows = (np.zeros((2, 64), np.float32), np.zeros((2, 4 * H), np.float32), np.zeros((2, 4 * H), np.float32),
            np.zeros((2, H), np.float32), np.zeros((2, H), np.float32))
    with pytest.raises(TypeError):  # the lower layer's rows: each must be contiguous, in order
        m.lstm(np.zeros((2, 16), np.float32)[:, ::2], *rows, 1)
    with pytest.raises(TypeError):
        m.lstm(np.zeros((2, 8), np.float32)[::-1], *rows, 1)
    assert m.lstm(np.ones((2, 16), np.float32)[:, :8], *rows, 2) is None and np.array_equal(rows[0][:, :8], np.ones((2, 8)))
    table = np.arange(3 * 4 * H, dtype=np.float32).reshape(3, 4 * H) / 1000  # a first layer's table
    v2, g2, c2, t2 = rows[0], rows[2], rows[3], rows[4]
    outs = []
    for addend, ids in ((table, np.array([2, 0])), (np.ascontiguousarray(table[[2, 0]]), None)):  # in place, copied
        g2[...], c2[...] = 0, 0.25
        assert m.lstm(None, v2, addend, g2, c2, t2, 2, *([] if ids is None else [ids])) is None
        outs.append((g2.copy(), c2.copy()))
    assert np.array_equal(outs[0][0], outs[1][0]) and np.array_equal(outs[0][1], outs[1][1])
    for bad in (np.array([3, 0]), np.array([-1, 0]), np.array([0]), np.array([[0, 1]])):
        with pytest.raises((ValueError, TypeError)):
            m.lstm(None, v2, table, g2, c2, t2, 1, bad)
    with pytest.raises(TypeError):
        m.lstm(None, v2, table, g2, c2, t2, 1, np.array([0, 1], np.int32))
    with pytest.raises(TypeError):
        mod.set_tanh(len)
    with pytest.raises(TypeError):
        mod.set_tanh(np.add)                                            # two inputs
    assert mod.set_tanh(np.isnan) is False                              # no float32 -> float32 loop: unchanged
    assert m.lstm(None, v, add, g, c, tmp, 1) is None and np.array_equal(g[:3 * H], np.full(3 * H, 0.5, np.float32))


@needs_kernel
@pytest.mark.parametrize("hidden,k", [(128, 3), (120, 9)])  # 120: a hidden size that is no multiple of 16
def test_the_lstm_call_over_several_rows_equals_the_layers_step(make_checkpoint, hidden, k):
    from rnnchat.engine.batched import Weights
    from rnnchat.engine.checkpoint import load_checkpoint

    model = load_checkpoint(make_checkpoint("lstm", hidden=hidden, embedding=8)).model.eval()
    layer = Weights(model, "int8").layers[1]
    assert layer.fused is not None
    rng = np.random.default_rng(6)
    h0, c0 = (rng.uniform(-1, 1, (k, hidden)).astype(np.float32) for _ in range(2))
    below = rng.uniform(-1, 1, (k, 2 * hidden)).astype(np.float32)[:, :hidden]  # rows apart in memory
    runs = []
    for fused, threads in ((False, 1), (True, 1), (True, 2), (True, 3)):
        st = {"h": h0.copy(), "c": c0.copy()}
        layer.buffers(st, k)
        if fused:
            layer.lin.row.lstm(below, st["v"], layer.bias, st["g"], st["c"], st["tmp"], threads)
        else:  # fbgemm's product over the rows, NumPy's element-wise work
            st["x"][...] = below
            y = fbgemm(layer.lin, st["v"], layer.bias)
            saved, layer.lin = layer.lin, lambda v, add, out: np.copyto(out, y)
            saved_fused, layer.fused, saved_cell, layer.cell = layer.fused, None, layer.cell, None
            layer.step(below, st)
            layer.lin, layer.fused, layer.cell = saved, saved_fused, saved_cell
        runs.append((st["h"].copy(), st["c"].copy(), st["g"].copy()))
    for run in runs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(runs[0], run))


@needs_kernel
@pytest.mark.parametrize("fmt", ["fp32", "int8"])
def test_the_lstm_cell_in_one_call_is_numpys_arithmetic_over_several_rows(make_checkpoint, fmt):
    from rnnchat.engine.batched import BatchedModel, Weights
    from rnnchat.engine.checkpoint import load_checkpoint

    model = load_checkpoint(make_checkpoint("lstm", hidden=128, embedding=8)).model.eval()
    weights = Weights(model, fmt)
    cells = [layer.cell for layer in weights.layers]
    assert all(c is not None for c in cells)
    gen = torch.Generator().manual_seed(5)
    state = [tuple((torch.rand(t.shape, generator=gen) * 2 - 1) * 0.5 for t in s) for s in model.initial_state(1)]
    outs = []
    for on in (True, False):
        for layer, c in zip(weights.layers, cells):
            layer.cell = c if on else None
        bm = BatchedModel(weights)
        for _ in range(3):
            bm.add(state)
        outs.append(np.stack([bm.step(np.array([1, 5, 9]) + i).copy() for i in range(20)]))
    assert np.array_equal(outs[0], outs[1])
    mod = own_int8_kernel()
    g, c, tmp, v = (np.zeros((2, 64), np.float32), np.zeros((2, 16), np.float32), np.zeros((2, 16), np.float32),
                    np.zeros((2, 32), np.float32))
    assert mod.lstm_cell(g, c, tmp, v, 16) is None
    for bad in ((g, c, tmp, v, 17), (g, c, tmp, v, -1), (g[:1], c, tmp, v, 0), (g, c, tmp[:, :8].copy(), v, 0)):
        with pytest.raises(ValueError):
            mod.lstm_cell(*bad)
    with pytest.raises(TypeError):
        mod.lstm_cell(g[0], c, tmp, v, 0)


@pytest.mark.skipif(dense_module() is None, reason="rnnchat's _dense extension was not built, or no AVX-512F here")
@pytest.mark.parametrize("shape", [(65, 512), (5, 16), (100, 33)])
def test_the_fixed_order_head_gives_a_row_the_same_bits_at_any_row_count(shape):
    mod = dense_module()
    rng = np.random.default_rng(shape[1])
    n, d = shape
    w = rng.standard_normal(shape).astype(np.float32)
    dense = mod.Dense(w)
    x = rng.standard_normal((9, 2 * d)).astype(np.float32)[:, :d]  # rows apart in memory
    add = rng.standard_normal(n).astype(np.float32)
    every = np.empty((9, n), np.float32)
    dense(x, add, every)
    assert np.allclose(every, x.astype(np.float64) @ w.T.astype(np.float64) + add, atol=1e-4)
    for k in range(1, 9):
        out = np.empty((k, n), np.float32)
        dense(np.ascontiguousarray(x[:k]), np.repeat(add[None], k, 0), out)
        assert np.array_equal(out, every[:k]), k
    one = np.empty(n, np.float32)
    dense(np.ascontiguousarray(x[4]), add, one)
    assert np.array_equal(one, every[4])
    for bad in ((x[:, :d - 1], add, every), (x, add[:-1], every), (x, add, every[:3]), (x[:, ::-1], add, every)):
        with pytest.raises((ValueError, TypeError)):
            dense(*bad)
    with pytest.raises(ValueError):
        mod.Dense(np.zeros((0, 4), np.float32))
    with pytest.raises(RuntimeError):
        mod.Dense.__new__(mod.Dense)(x, add, every)  # never initialised


@pytest.mark.skipif(dense_module() is None, reason="rnnchat's _dense extension was not built, or no AVX-512F here")
def test_a_quantised_models_small_head_sums_in_a_fixed_order(make_checkpoint):
    from rnnchat.engine.batched import Weights
    from rnnchat.engine.checkpoint import load_checkpoint

    model = load_checkpoint(make_checkpoint("lstm", hidden=128, embedding=8)).model.eval()
    assert Weights(model, "int8").head.kernel == "rnnchat-fp32"
    assert Weights(model, "fp32").head.kernel == "openblas"  # fp32: the single stream's own np.dot
