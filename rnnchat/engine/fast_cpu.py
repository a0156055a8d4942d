"""The CPU fast path: one character per call with NumPy, on weights exported once at load.

At batch 1 a step of a 2 x 512 LSTM is a few matrix-vector products over 13 MB
of weights plus a few dozen small element-wise operations. Eager PyTorch pays
several microseconds of dispatch per operation; NumPy pays about one, so a
NumPy step spends nearly all its time streaming weights (see
``docs/performance.md`` for the figures).

How the built-in layers are laid out:

* every layer's weights are one ``[G*H, W]`` matrix over one input vector
  ``[x | h | 1 | 0...]`` (the bias is a column, ``W`` is padded to 64 bytes), so
  a layer costs one ``np.dot`` for all gates, inputs and biases;
* the first layer's input product is a table over the vocabulary
  (``embedding @ W_ih^T + b``), so the first layer reads a row instead;
* sigmoid gates are computed as ``0.5 * tanh(a / 2) + 0.5`` with the ``1/2``
  folded into the weights, so all gates of a layer go through one ``np.tanh``;
  LSTM gate rows are reordered (i, f, o, g) so the sigmoid gates are contiguous.

The protocol a layer implements (the built-in ones below, or a third-party
cell's through ``CellSpec.fast_path``) is documented in :mod:`rnnchat.engine.fast`.
"""

from __future__ import annotations

import numpy as np
import torch

from rnnchat.engine.cells import GRUCell, LSTMCell, RNNCell

F32 = np.float32
HALF = np.float32(0.5)  # NumPy scalars: a Python float operand costs twice as much per call
ZERO = np.float32(0.0)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy().astype(F32, copy=True)


def _padded(n: int) -> int:
    return (n + 15) // 16 * 16


def _vec(state) -> np.ndarray:
    """A batch-1 state tensor -> a fresh float32 vector."""
    return _np(state).reshape(-1)


def _tensor(v: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(v.copy()).view(1, -1).to(like.device, like.dtype)


class _Buffers:
    """Per-stream state of one layer: the input vector ``[x | h | 1 | 0...]`` and scratch."""

    __slots__ = ("v", "x", "h", "c", "g", "tmp", "vh", "d", "views")


class NumpyLayerBase:
    """Shared set-up: the fused weight matrix over ``[x | h | 1]`` and the table mode."""

    gates = 1
    table: np.ndarray | None = None

    def __init__(self, cell) -> None:
        self.cell = cell
        self.input_size = cell.input_size
        self.hidden_size = cell.hidden_size

    def bind_table(self, inputs: np.ndarray) -> bool:
        """Precompute the input product for every possible input row (the first layer's
        embedding table). Afterwards the stream calls ``step_row(i, s)``."""
        self._build_table(inputs)
        return True

    def _like(self) -> torch.Tensor:
        return self.cell.weight_hh


class _FusedStep(NumpyLayerBase):
    """Layers whose whole pre-activation is one product ``W @ [x | h | 1]`` (LSTM, RNN);
    ``_finish`` applies the cell's non-linearities in place. Subclasses set ``w_ih``, ``w_hh``,
    ``bias`` (rows in the order ``_finish`` reads them) and ``scale``."""

    scale: np.ndarray | None = None  # a factor per row folded into the weights (LSTM: 1/2 on sigmoid rows)

    def _fused(self, input_cols: int) -> np.ndarray:
        H = self.hidden_size
        W = np.zeros((self.w_hh.shape[0], _padded(input_cols + H + 1)), F32)
        if input_cols:
            W[:, :input_cols] = self.w_ih
        W[:, input_cols:input_cols + H] = self.w_hh
        W[:, input_cols + H] = self.bias
        return W if self.scale is None else W * self.scale[:, None]

    def _build_table(self, inputs: np.ndarray) -> None:
        table = inputs.astype(F32) @ self.w_ih.T
        self.table = np.ascontiguousarray(table if self.scale is None else table * self.scale)
        self.W = self._fused(0)

    def _buffers(self, h) -> _Buffers:
        """A stream's buffers: ``v = [x | h | 1]`` (no x once the input is a table row), ``g``."""
        H = self.hidden_size
        s = _Buffers()
        cols = 0 if self.table is not None else self.input_size
        s.v = np.zeros(self.W.shape[1], F32)
        s.v[cols + H] = 1.0
        s.x = s.v[:cols]
        s.h = s.v[cols:cols + H]
        s.h[:] = _vec(h)
        s.g = np.empty(self.W.shape[0], F32)
        return s

    def step(self, x: np.ndarray, s: _Buffers) -> np.ndarray:
        s.x[:] = x
        np.dot(self.W, s.v, out=s.g)
        return self._finish(s)

    def step_row(self, i: int, s: _Buffers) -> np.ndarray:
        np.dot(self.W, s.v, out=s.g)
        np.add(s.g, self.table[i], out=s.g)
        return self._finish(s)


class NumpyLSTM(_FusedStep):
    def __init__(self, cell: LSTMCell) -> None:
        super().__init__(cell)
        H, I = self.hidden_size, self.input_size
        # reorder (i, f, g, o) -> (i, f, o, g); halve the sigmoid rows (tanh trick)
        self.order = np.r_[0:2 * H, 3 * H:4 * H, 2 * H:3 * H]
        self.scale = np.ones(4 * H, F32)
        self.scale[:3 * H] = 0.5
        w_ih, w_hh = _np(cell.weight_ih)[self.order], _np(cell.weight_hh)[self.order]
        bias = (_np(cell.bias_ih) + _np(cell.bias_hh))[self.order]
        self.w_ih, self.w_hh, self.bias = w_ih, w_hh, bias
        self.W = self._fused(I)

    def new_state(self, state) -> _Buffers:
        H = self.hidden_size
        h, c = state
        s = self._buffers(h)
        s.c = _vec(c)
        s.tmp = np.empty(H, F32)
        g = s.g  # views made once: slicing in the step costs as much as a small ufunc call
        s.views = (g, g[:3 * H], g[:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:], s.c, s.tmp, s.h)
        return s

    def export_state(self, s: _Buffers):
        like = self._like()
        return (_tensor(s.h, like), _tensor(s.c, like))

    def _finish(self, s: _Buffers) -> np.ndarray:
        g, sig, i, f, o, gg, c, tmp, h = s.views
        tanh, mul, add = np.tanh, np.multiply, np.add
        tanh(g, out=g)
        mul(sig, HALF, out=sig)
        add(sig, HALF, out=sig)
        mul(c, f, out=c)           # f * c
        mul(i, gg, out=tmp)        # i * g
        add(c, tmp, out=c)
        tanh(c, out=tmp)
        mul(o, tmp, out=h)         # h = o * tanh(c)
        return h


class NumpyGRU(NumpyLayerBase):
    """r, z, n as PyTorch: ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = n + z (h - n)``."""

    def __init__(self, cell: GRUCell) -> None:
        super().__init__(cell)
        H, I = self.hidden_size, self.input_size
        self.scale = np.ones(3 * H, F32)
        self.scale[:2 * H] = 0.5
        self.w_ih, self.b_ih = _np(cell.weight_ih), _np(cell.bias_ih)
        self.Wi = self._aug(self.w_ih, self.b_ih, I)
        self.Wh = self._aug(_np(cell.weight_hh), _np(cell.bias_hh), H)

    def _aug(self, w, b, cols) -> np.ndarray:
        W = np.zeros((w.shape[0], _padded(cols + 1)), F32)
        W[:, :cols] = w
        W[:, cols] = b
        return W * self.scale[:, None]

    def _build_table(self, inputs: np.ndarray) -> None:
        self.table = np.ascontiguousarray((inputs.astype(F32) @ self.w_ih.T + self.b_ih) * self.scale)

    def new_state(self, state) -> _Buffers:
        H, I = self.hidden_size, self.input_size
        s = _Buffers()
        s.v = np.zeros(self.Wi.shape[1], F32)       # [x | 1 | 0...]
        s.v[I] = 1.0
        s.x = s.v[:I]
        s.vh = np.zeros(self.Wh.shape[1], F32)      # [h | 1 | 0...]
        s.vh[H] = 1.0
        s.h = s.vh[:H]
        s.h[:] = _vec(state)
        s.g = np.empty(3 * H, F32)                 # input products
        s.c = np.empty(3 * H, F32)                 # hidden products
        s.tmp = np.empty(H, F32)
        s.d = np.empty(H, F32)
        gh = s.c
        s.views = (gh, gh[:2 * H], gh[:H], gh[H:2 * H], gh[2 * H:], s.tmp, s.d, s.h, s.vh)
        return s

    def export_state(self, s: _Buffers):
        return _tensor(s.h, self._like())

    def step(self, x: np.ndarray, s: _Buffers) -> np.ndarray:
        s.x[:] = x
        np.dot(self.Wi, s.v, out=s.g)
        return self._gates(s.g, s)

    def step_row(self, i: int, s: _Buffers) -> np.ndarray:
        return self._gates(self.table[i], s)

    def _gates(self, gi: np.ndarray, s: _Buffers) -> np.ndarray:
        H = self.hidden_size
        gh, rz, r, z, hn, tmp, d, h, vh = s.views
        tanh, mul, add = np.tanh, np.multiply, np.add
        np.dot(self.Wh, vh, out=gh)
        add(rz, gi[:2 * H], out=rz)
        tanh(rz, out=rz)
        mul(rz, HALF, out=rz)
        add(rz, HALF, out=rz)
        mul(r, hn, out=tmp)                  # r * (W_hn h + b_hn)
        add(tmp, gi[2 * H:], out=tmp)
        tanh(tmp, out=tmp)                   # n
        np.subtract(h, tmp, out=d)
        mul(d, z, out=d)
        add(tmp, d, out=h)                   # h' = n + z (h - n)
        return h


class NumpyRNN(_FusedStep):
    def __init__(self, cell: RNNCell) -> None:
        super().__init__(cell)
        self.relu = cell.nonlinearity == "relu"
        self.w_ih = _np(cell.weight_ih)
        self.w_hh = _np(cell.weight_hh)
        self.bias = _np(cell.bias_ih) + _np(cell.bias_hh)
        self.W = self._fused(self.input_size)

    def new_state(self, state) -> _Buffers:
        return self._buffers(state)

    def export_state(self, s: _Buffers):
        return _tensor(s.h, self._like())

    def _finish(self, s: _Buffers) -> np.ndarray:
        if self.relu:
            np.maximum(s.g, ZERO, out=s.h)
        else:
            np.tanh(s.g, out=s.h)
        return s.h


BUILTIN = {LSTMCell: NumpyLSTM, GRUCell: NumpyGRU, RNNCell: NumpyRNN}


def builtin_layer(cell, device):
    """The built-in cells' ``fast_path``: a NumPy layer for CPU, nothing elsewhere."""
    if torch.device(device).type != "cpu":
        return None
    cls = BUILTIN.get(type(cell))
    return cls(cell) if cls is not None else None


class NumpyModel:
    """Embedding -> layers -> head, for one character at a time. Weights are shared by every
    stream; ``new_state`` makes the per-stream buffers."""

    backend = "numpy"

    def __init__(self, model, layers: list) -> None:
        self.layers = layers
        emb = _np(model.embedding.weight)
        self.emb = emb
        first = layers[0]
        self.first_by_row = bool(getattr(first, "bind_table", None)) and bool(first.bind_table(emb))
        H = model.head.in_features
        self.hidden = H
        self.Wo = np.zeros((model.head.out_features, _padded(H + 1)), F32)
        self.Wo[:, :H] = _np(model.head.weight)
        self.Wo[:, H] = _np(model.head.bias)

    def new_state(self, state: list) -> "NumpyState":
        return NumpyState(self, [layer.new_state(s) for layer, s in zip(self.layers, state)])


class NumpyState:
    """One stream's buffers; ``step(id)`` returns the next logits (a buffer reused each call)."""

    def __init__(self, fm: NumpyModel, layer_states: list) -> None:
        self.fm = fm
        self.states = layer_states
        self.vo = np.zeros(fm.Wo.shape[1], F32)
        self.vo[fm.hidden] = 1.0
        self.ho = self.vo[:fm.hidden]
        self.logits = np.empty(fm.Wo.shape[0], F32)
        self.step = self._make_step()

    def _make_step(self):
        fm, states, layers = self.fm, self.states, self.fm.layers
        first, s0 = layers[0], states[0]
        rest = list(zip(layers[1:], states[1:]))
        emb, Wo, vo, ho, logits = fm.emb, fm.Wo, self.vo, self.ho, self.logits
        dot, copyto = np.dot, np.copyto
        if fm.first_by_row:
            first_step = first.step_row

            def step(i: int) -> np.ndarray:
                h = first_step(i, s0)
                for layer, s in rest:
                    h = layer.step(h, s)
                copyto(ho, h)
                dot(Wo, vo, out=logits)
                return logits
        else:
            first_step = first.step

            def step(i: int) -> np.ndarray:
                h = first_step(emb[i], s0)
                for layer, s in rest:
                    h = layer.step(h, s)
                copyto(ho, h)
                dot(Wo, vo, out=logits)
                return logits
        return step

    def export(self) -> list:
        return [layer.export_state(s) for layer, s in zip(self.fm.layers, self.states)]
