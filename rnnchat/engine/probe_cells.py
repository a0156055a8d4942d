"""What each recurrent layer exposes to ``rnnchat probe``: its state and its gates, per character.

A layer reader runs one cell over a chunk ``x[B,T,I]`` from ``state`` and returns
``(y, new_state, quantities)`` where each quantity is a tensor ``[B,T,K]``: the
value after reading each character. ``y`` and ``new_state`` always come from the
cell's own ``forward`` (so the next layer reads exactly what the model reads).

* Built-in cells: the gates are recomputed for the whole chunk at once from
  ``x`` and the previous outputs (one matrix product), with the cells' own
  layout (see ``rnnchat/engine/cells.py``): LSTM c, h, i, f, g, o; GRU h, r,
  z, n, where z is the equations' update gate, ``1 - z_pt``
  (``h' = (1 - z) h + z n``); RNN h.
* A plugin cell with the optional contract (docs/plugins.md, "Looking inside
  a cell"): a class attribute ``QUANTITIES = {name: kind}`` and a method
  ``quantities(x, state) -> {name: Tensor[B,T,K]}``.
* Any other cell shows its state only: ``h`` (its output) and, when its state is
  a tuple, the tensors after the first (``c``, then ``c2``, ``c3``...), read
  with ``step`` one character at a time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from rnnchat.engine.cells import GRUCell, LSTMCell, RNNCell
from rnnchat.core.errors import PluginError

KINDS = ("state", "gate", "value")  # gate: values in [0, 1], counted for saturation
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
MAX_QUANTITIES = 16

LSTM_QUANTITIES = {"c": "state", "h": "state", "i": "gate", "f": "gate", "g": "value", "o": "gate"}
GRU_QUANTITIES = {"h": "state", "r": "gate", "z": "gate", "n": "value"}
RNN_QUANTITIES = {"h": "state"}
DESCRIPTIONS = {"c": "cell state", "h": "hidden state", "i": "input gate", "f": "forget gate",
                "g": "candidate (tanh)", "o": "output gate", "r": "reset gate", "z": "update gate",
                "n": "candidate (tanh)"}


def _previous(h0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The output before each character: h0, y[0], ..., y[T-2]."""
    return torch.cat([h0.unsqueeze(1), y[:, :-1]], dim=1)


def _recurrence(f: torch.Tensor, b: torch.Tensor, c0: torch.Tensor) -> torch.Tensor:
    """c_t = f_t * c_{t-1} + b_t over the time axis of [B,T,H] tensors."""
    out = torch.empty_like(b)
    c = c0
    for t in range(b.shape[1]):
        c = torch.addcmul(b[:, t], f[:, t], c)
        out[:, t] = c
    return out


def lstm_quantities(cell, x, state, y) -> dict:
    h0, c0 = state
    gates = torch.addmm(cell.bias_ih + cell.bias_hh, x.flatten(0, 1), cell.weight_ih.t())
    gates = gates.view(*x.shape[:2], -1) + _previous(h0, y) @ cell.weight_hh.t()
    i, f, g, o = gates.chunk(4, -1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = _recurrence(f, i * g, c0)
    return {"c": c, "h": o * torch.tanh(c), "i": i, "f": f, "g": g, "o": o}


def gru_quantities(cell, x, state, y) -> dict:
    prev = _previous(state, y)
    gi = (x @ cell.weight_ih.t() + cell.bias_ih).chunk(3, -1)
    gh = (prev @ cell.weight_hh.t() + cell.bias_hh).chunk(3, -1)
    r = torch.sigmoid(gi[0] + gh[0])
    z_pt = torch.sigmoid(gi[1] + gh[1])
    n = torch.tanh(gi[2] + r * gh[2])
    return {"h": n + z_pt * (prev - n), "r": r, "z": 1.0 - z_pt, "n": n}


def rnn_quantities(cell, x, state, y) -> dict:
    a = x @ cell.weight_ih.t() + cell.bias_ih + _previous(state, y) @ cell.weight_hh.t() + cell.bias_hh
    return {"h": torch.tanh(a) if cell.nonlinearity == "tanh" else torch.relu(a)}


BUILTIN = {LSTMCell: (LSTM_QUANTITIES, lstm_quantities), GRUCell: (GRU_QUANTITIES, gru_quantities),
           RNNCell: (RNN_QUANTITIES, rnn_quantities)}


def declared_quantities(cell) -> dict[str, str] | None:
    """A plugin cell's ``QUANTITIES`` checked, or None when it does not offer the contract."""
    declared = getattr(type(cell), "QUANTITIES", None)
    method = getattr(cell, "quantities", None)
    if declared is None and method is None:
        return None
    who = f"cell {type(cell).__name__}"
    if not callable(method):
        raise PluginError(f"{who} declares QUANTITIES but has no quantities(x, state) method")
    if not isinstance(declared, dict) or not 1 <= len(declared) <= MAX_QUANTITIES:
        raise PluginError(f"{who}: QUANTITIES must be a dict of 1 to {MAX_QUANTITIES} entries {{name: kind}}")
    for name, kind in declared.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise PluginError(f"{who}: quantity name {name!r} must be lowercase letters, digits or '_' "
                              "(at most 16, starting with a letter)")
        if kind not in KINDS:
            raise PluginError(f"{who}: quantity {name!r} has kind {kind!r}; use one of {', '.join(KINDS)}")
    return dict(declared)


@dataclass
class LayerReader:
    """Reads one layer's chunk and returns (y, new_state, {name: [B,T,K]})."""

    cell: torch.nn.Module
    kinds: dict[str, str]
    how: str  # "builtin", "contract" or "state"

    def run(self, x: torch.Tensor, state):
        if self.how == "state" and not isinstance(state, torch.Tensor):
            return self._run_steps(x, state)
        y, new_state = self.cell(x, state)
        if self.how == "builtin":
            found = BUILTIN[type(self.cell)][1](self.cell, x, state, y)
        elif self.how == "contract":
            found = self._checked(self.cell.quantities(x, state), x, y)
        else:
            found = {"h": y}
        return y, new_state, found

    def _run_steps(self, x, state):
        ys, extra = [], [[] for _ in range(len(state) - 1)]
        for t in range(x.shape[1]):
            y, state = self.cell.step(x[:, t], state)
            ys.append(y)
            for k, s in enumerate(state[1:]):
                extra[k].append(s.reshape(s.shape[0], -1))
        y = torch.stack(ys, 1)
        found = {"h": y}
        for k, values in enumerate(extra):
            found["c" if k == 0 else f"c{k + 1}"] = torch.stack(values, 1)
        return y, state, found

    def _checked(self, found, x, y) -> dict:
        who = f"cell {type(self.cell).__name__}"
        if not isinstance(found, dict) or set(found) != set(self.kinds):
            got = sorted(found) if isinstance(found, dict) else type(found).__name__
            raise PluginError(f"{who}.quantities returned {got}; its QUANTITIES declare {sorted(self.kinds)}")
        for name, value in found.items():
            if (not isinstance(value, torch.Tensor) or value.dim() != 3 or tuple(value.shape[:2]) != tuple(x.shape[:2])
                    or not value.is_floating_point()):
                raise PluginError(f"{who}.quantities: {name!r} must be a float tensor [B, T, K] "
                                  f"with B, T = {tuple(x.shape[:2])}")
            if not torch.isfinite(value).all():
                raise PluginError(f"{who}.quantities: {name!r} holds NaN or infinite values")
        return found


def reader_for(cell) -> LayerReader:
    declared = declared_quantities(cell)
    if declared is not None:
        return LayerReader(cell, declared, "contract")
    if type(cell) in BUILTIN:
        return LayerReader(cell, dict(BUILTIN[type(cell)][0]), "builtin")
    state = cell.initial_state(1)
    if isinstance(state, torch.Tensor):
        return LayerReader(cell, {"h": "state"}, "state")
    names = ["h"] + ["c" if k == 0 else f"c{k + 1}" for k in range(len(state) - 1)]
    return LayerReader(cell, {n: "state" for n in names}, "state")
