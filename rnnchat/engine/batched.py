"""One character for K streams at once: one matrix-matrix product per layer over K states.

At batch 1 a character reads every weight once for one state; reading them
once for K states costs little more, so K continuations come for about the
price of one (docs/performance.md). :class:`BatchedModel` holds the weights (in
fp32, bf16 or int8, :mod:`rnnchat.engine.quant`) and the states of the active
streams as rows of ``[K, H]`` arrays; streams can be added and removed between
steps (a server keeps one per request). :mod:`rnnchat.engine.multi` samples
and streams text on top of it.

The layout follows :mod:`rnnchat.engine.fast_cpu`: LSTM gates reordered
(i, f, o, g) and the sigmoid rows halved so every gate goes through one
``tanh``; the first layer's input product is a table over the vocabulary
(fp32, bias included); later layers multiply ``[x | h]`` by one matrix; each
layer's ``h`` lives inside its product input. A row's result does not depend on
the thread count, and on int8 weights not on the other rows either
(:mod:`quant`).

Built-in cells only (LSTM, GRU, tanh/relu RNN, exact classes); anything else
raises :class:`~rnnchat.core.errors.SettingError`.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnchat.engine.cells import GRUCell, LSTMCell, RNNCell
from rnnchat.engine.quant import F32, SMALL, Linear, kernel_threads, own_int8_kernel, padded
from rnnchat.core.errors import SettingError

HALF = F32(0.5)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy().astype(F32, copy=True)


class _Layer:
    """One layer's weights; ``step(inp, st)`` advances the rows of ``st`` (a dict of arrays)."""

    def __init__(self, cell, fmt: str, emb: np.ndarray | None, input_bounded: bool = False) -> None:
        kind = {LSTMCell: "lstm", GRUCell: "gru", RNNCell: "rnn"}.get(type(cell))
        if kind is None:
            raise SettingError(f"batched and bf16/int8 generation need a built-in cell, not {type(cell).__name__}")
        self.kind, self.H, self.I = kind, cell.hidden_size, cell.input_size
        self.relu = kind == "rnn" and cell.nonlinearity == "relu"
        H, I = self.H, self.I
        w_ih, w_hh = _np(cell.weight_ih), _np(cell.weight_hh)
        b_ih, b_hh = _np(cell.bias_ih), _np(cell.bias_hh)
        scale = np.ones(w_hh.shape[0], F32)
        if kind == "lstm":
            order = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]
            w_ih, w_hh, b_ih, b_hh = w_ih[order], w_hh[order], b_ih[order], b_hh[order]
            scale[:3 * H] = 0.5
        elif kind == "gru":
            scale[:2 * H] = 0.5
        w_ih, w_hh = w_ih * scale[:, None], w_hh * scale[:, None]
        b_ih, b_hh = b_ih * scale, b_hh * scale
        self.first = emb is not None
        self.table = None
        # a product's input is in [-1, 1] (h of this layer and the layer below) unless a relu made it
        bounded = not self.relu and (self.first or input_bounded)
        if kind == "gru":  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): two products
            self.bias_h = b_hh
            self.lin_h = Linear(w_hh, fmt, bounded=not self.relu)
            if self.first:
                self.table = np.ascontiguousarray(emb @ w_ih.T + b_ih)
            else:
                self.lin_i, self.bias_i = Linear(w_ih, fmt, bounded=input_bounded), b_ih
        else:  # one product over [x | h] (the first layer: over h, plus a table row)
            bias = b_ih + b_hh
            if self.first:
                self.table = np.ascontiguousarray(emb @ w_ih.T + bias)
                self.lin = Linear(w_hh, fmt, bounded=bounded)
            else:
                self.lin, self.bias = Linear(np.concatenate([w_ih, w_hh], 1), fmt, bounded=bounded), bias
        self.linears = [getattr(self, n) for n in ("lin", "lin_h", "lin_i") if hasattr(self, n)]
        self.fused = None  # the whole LSTM layer in rnnchat's int8 kernel, any rows (set by _fuse)
        self.cell = None   # the LSTM cell's element-wise work in one call, any rows (set by _fuse)

    # ---- states: a dict of [K, ...] arrays --------------------------------------------
    def new_rows(self, state, k: int) -> dict:
        """Arrays for ``k`` streams, every row from the cell's own batch-1 ``state``."""
        H = self.H
        h = state[0] if self.kind == "lstm" else state
        st = {"h": np.repeat(_np(h).reshape(1, H), k, 0)}
        if self.kind == "lstm":
            st["c"] = np.repeat(_np(state[1]).reshape(1, H), k, 0)
        return st

    def export_row(self, st: dict, row: int, like: torch.Tensor):
        def t(a):
            return torch.from_numpy(a[row].copy()).view(1, -1).to(like.device, like.dtype)

        return (t(st["h"]), t(st["c"])) if self.kind == "lstm" else t(st["h"])

    def buffers(self, st: dict, k: int) -> None:
        """Scratch for ``k`` rows: the product inputs ``[x | h | 0...]`` and the pre-activations.
        ``h`` becomes a view into its product input, so a step writes it where it is read next."""
        H = self.H
        G = H * (4 if self.kind == "lstm" else 3 if self.kind == "gru" else 1)
        if self.kind == "gru":
            st["vh"] = v = np.zeros((k, self.lin_h.cols), F32)
            off = 0
            st["gh"] = gh = np.empty((k, G), F32)
            st["gi"] = gi = np.empty((k, G), F32)
            if not self.first:
                st["vi"] = np.zeros((k, self.lin_i.cols), F32)
            st["views"] = (gh[:, :2 * H], gi[:, :2 * H], gh[:, :H], gh[:, H:2 * H], gh[:, 2 * H:], gi[:, 2 * H:])
        else:
            st["v"] = v = np.zeros((k, self.lin.cols), F32)
            off = 0 if self.first else self.I
            st["g"] = g = np.empty((k, G), F32)
            st["x"] = v[:, :off]
            if self.kind == "lstm":  # views made once: slicing in the step costs as much as a small ufunc
                st["views"] = (g[:, :3 * H], g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:])
        v[:, off:off + H] = st["h"]
        st["h"] = v[:, off:off + H]
        if self.kind != "rnn":
            st["tmp"] = np.empty((k, H), F32)

    # ---- one step -------------------------------------------------------------------
    def step(self, inp: np.ndarray, st: dict) -> np.ndarray:
        """``inp``: ids ``[K]`` (first layer) or the layer below's ``h`` ``[K, I]``. Returns ``h``
        (a view into this layer's buffers, valid until its next step)."""
        if self.kind == "gru":
            return self._gru(inp, st)
        v, g, h = st["v"], st["g"], st["h"]
        if self.fused is not None:  # the same arithmetic in one call (_fuse)
            if self.first:  # each row adds its table row (read in place: no copy)
                ids = inp if type(inp) is np.ndarray and inp.dtype == np.int64 and inp.flags.c_contiguous \
                    else np.ascontiguousarray(inp, np.int64)
                self.fused(None, v, self.table, g, st["c"], st["tmp"], kernel_threads(), ids)
            else:
                self.fused(inp, v, self.bias, g, st["c"], st["tmp"], kernel_threads())
            return h
        if self.first:
            self.lin(v, self.table[inp], g)
        else:
            st["x"][...] = inp
            self.lin(v, self.bias, g)
        if self.kind == "rnn":
            if self.relu:
                np.maximum(g, F32(0), out=h)
            else:
                np.tanh(g, out=h)
            return h
        c, tmp = st["c"], st["tmp"]
        if self.cell is not None:  # the same arithmetic as below, in one call (_fuse)
            self.cell(g, c, tmp, v, 0 if self.first else self.I)
            return h
        sig, i, f, o, gg = st["views"]
        mul, add = np.multiply, np.add
        np.tanh(g, out=g)
        mul(sig, HALF, out=sig)
        add(sig, HALF, out=sig)
        mul(c, f, out=c)           # f * c
        mul(i, gg, out=tmp)        # i * g
        add(c, tmp, out=c)
        np.tanh(c, out=tmp)
        mul(o, tmp, out=h)         # h = o * tanh(c)
        return h

    def _gru(self, inp, st: dict) -> np.ndarray:
        h, vh, gh, gi, tmp = st["h"], st["vh"], st["gh"], st["gi"], st["tmp"]
        rz, rz_i, r, z, hn, n_i = st["views"]
        if self.first:
            np.take(self.table, inp, axis=0, out=gi)
        else:
            vi = st["vi"]
            vi[:, :self.I] = inp
            self.lin_i(vi, self.bias_i, gi)
        self.lin_h(vh, self.bias_h, gh)
        np.add(rz, rz_i, out=rz)
        np.tanh(rz, out=rz)
        np.multiply(rz, HALF, out=rz)
        np.add(rz, HALF, out=rz)
        np.multiply(r, hn, out=tmp)                      # r * (W_hn h + b_hn)
        np.add(tmp, n_i, out=tmp)
        np.tanh(tmp, out=tmp)                            # n
        np.subtract(h, tmp, out=h)
        np.multiply(h, z, out=h)
        np.add(h, tmp, out=h)                            # h' = n + z (h - n)
        return h


def _fuse(layer: _Layer) -> None:
    """Let an LSTM layer do its cell's element-wise work in one call of rnnchat's C extension
    (NumPy's own tanh loop, the same multiplies and adds in the same order), and an int8 layer on
    rnnchat's kernel its whole step (the product, then the rows' cells split over the kernel's
    threads), after checking once, bit for bit, that each call gives the layer's own step on
    random states (1 and 3 rows)."""
    mod = own_int8_kernel()
    if layer.kind != "lstm" or not getattr(mod, "fused_lstm", False):
        return
    row = getattr(layer.lin, "row", None)

    def run(rows: int, fused, cell):
        rng = np.random.default_rng(rows)
        st = {k: rng.uniform(-1, 1, (rows, layer.H)).astype(F32) for k in ("h", "c")}
        layer.buffers(st, rows)
        inp = np.arange(rows) % 2 if layer.first else rng.uniform(-1, 1, (rows, layer.I)).astype(F32)
        layer.fused, layer.cell = fused, cell
        return layer.step(inp, st).copy(), st["c"].copy(), st["g"].copy()

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(a, b))

    plain = {k: run(k, None, None) for k in (1, 3)}  # the layer's own step: the reference for both
    cell = mod.lstm_cell if all(same(plain[k], run(k, None, mod.lstm_cell)) for k in (1, 3)) else None
    fused = row.lstm if row is not None and all(same(plain[k], run(k, row.lstm, None)) for k in (1, 3)) else None
    layer.fused, layer.cell = fused, cell


class Weights:
    """A model's weights for batched steps in one format, built once and shared by every
    :class:`BatchedModel` (the chat's streams, a server's requests)."""

    def __init__(self, model, fmt: str = "fp32") -> None:
        if not isinstance(getattr(model, "layers", None), torch.nn.ModuleList):
            raise SettingError("batched generation needs a CharRNN model")
        self.fmt = fmt
        emb = _np(model.embedding.weight)
        self.layers = []
        for i, cell in enumerate(model.layers):
            below = self.layers[-1] if self.layers else None
            self.layers.append(_Layer(cell, fmt, emb if i == 0 else None, below is not None and not below.relu))
            _fuse(self.layers[-1])
        self.like = model.layers[0].weight_hh
        self.hidden = model.head.in_features
        head = _np(model.head.weight)
        # a small head (a character vocabulary: 65 x 512 is 133 KB) stays fp32 in every format
        # (on bf16/int8 weights a row's logits are then the same bits at any number of rows)
        self.head = Linear(head, fmt if head.nbytes > SMALL else "fp32", bounded=not self.layers[-1].relu,
                           fixed_order=fmt != "fp32")
        self.head_bias = _np(model.head.bias)
        self.vocab_size = model.head.out_features

    @property
    def kernels(self) -> str:
        """The kernels of the layers' products, e.g. ``vnni+rnnchat`` (for ``--stats``)."""
        names = [lin.kernel + ("+lstm" if layer.fused else "+cell" if layer.cell else "")
                 for layer in self.layers for lin in layer.linears]
        return "/".join(dict.fromkeys(names))

    @property
    def nbytes(self) -> int:
        """Bytes of weights a step reads once (the first layer's table rows not counted)."""
        return sum(lin.nbytes for layer in self.layers for lin in layer.linears) + self.head.nbytes


class BatchedModel:
    """The states of the active streams as rows, stepped together over shared :class:`Weights`.

    ``add(state)`` -> a row index; ``remove(row)`` shifts the rows after it up by one;
    ``step(ids)`` advances every row by its character and returns logits ``[K, V]`` (a buffer
    reused by the next step); ``export(row)`` gives the row's state as torch tensors.
    """

    def __init__(self, weights: Weights) -> None:
        self.weights = weights
        self.layers = weights.layers
        self.states = [self._empty(layer) for layer in self.layers]
        self._resize()

    @staticmethod
    def _empty(layer: _Layer) -> dict:
        st = {"h": np.zeros((0, layer.H), F32)}
        if layer.kind == "lstm":
            st["c"] = np.zeros((0, layer.H), F32)
        return st

    @property
    def size(self) -> int:
        return self.states[0]["h"].shape[0]

    def _resize(self) -> None:
        k = self.size
        for layer, st in zip(self.layers, self.states):
            layer.buffers(st, k)
        self.vo = np.zeros((k, self.weights.head.cols), F32)
        self.logits = np.empty((k, self.weights.vocab_size), F32)

    def add(self, state) -> int:
        """A new stream from a batch-1 torch state (the model's own format). Returns its row."""
        for layer, st, s in zip(self.layers, self.states, state):
            for key, value in layer.new_rows(s, 1).items():
                st[key] = np.concatenate([st[key], value])
        self._resize()
        return self.size - 1

    def remove(self, row: int) -> None:
        if not 0 <= row < self.size:
            raise IndexError(f"no stream in row {row}")
        for st in self.states:
            for key in ("h", "c"):
                if key in st:
                    st[key] = np.delete(st[key], row, 0)
        self._resize()

    def export(self, row: int) -> list:
        like = self.weights.like
        return [layer.export_row(st, row, like) for layer, st in zip(self.layers, self.states)]

    def step(self, ids: np.ndarray) -> np.ndarray:
        """Advance every row by its id (``ids`` int ``[K]``); logits ``[K, V]`` for the next one."""
        layers, states, w = self.layers, self.states, self.weights
        h = layers[0].step(ids, states[0])
        for layer, st in zip(layers[1:], states[1:]):
            h = layer.step(h, st)
        self.vo[:, :w.hidden] = h
        return w.head(self.vo, w.head_bias, self.logits)
