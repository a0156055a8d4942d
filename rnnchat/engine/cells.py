"""The built-in recurrent cells.

Every cell runs one layer and offers three methods:

* ``initial_state(batch)``: zeros, on the cell's device;
* ``forward(x[B,T,I], state) -> (y[B,T,H], state)``: a whole sequence, here
  through PyTorch's fused kernels (``torch.lstm``/``torch.gru``/``torch.rnn_*``);
* ``step(x[B,I], state) -> (h[B,H], state)``: one time step, hand-written with
  ``addmm`` so that generation pays one matrix product per weight.

Tensors use PyTorch's fused-RNN layout and gate order (LSTM: i, f, g, o;
GRU: r, z, n), so ``weight_ih`` is ``[G*H, I]``, ``weight_hh`` is ``[G*H, H]``.
PyTorch's GRU update gate is the complement of the textbook one:
``h' = (1 - z_pt) * n + z_pt * h``, so the equations' ``z`` is ``1 - z_pt``; and
PyTorch's ``b_hn`` sits inside the reset product: ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rnnchat.core.errors import PluginError


class FusedCell(nn.Module):
    """Shared parameters and state handling for the built-in cells."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, **options) -> None:
        super().__init__()
        self._check_options(options)
        self.input_size = input_size
        self.hidden_size = hidden_size
        g = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(g, input_size))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(g))
        self.bias_hh = nn.Parameter(torch.empty(g))
        self.reset_parameters()

    options: dict = {}

    def _check_options(self, options: dict) -> None:
        unknown = set(options) - set(self.options)
        if unknown:
            raise PluginError(f"{type(self).__name__}: unknown option(s) {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(self.options) or 'none'}")

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def params(self) -> list[torch.Tensor]:
        return [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]

    def _zeros(self, batch: int) -> torch.Tensor:
        w = self.weight_hh
        return torch.zeros(batch, self.hidden_size, device=w.device, dtype=w.dtype)

    def initial_state(self, batch: int):
        return self._zeros(batch)


class LSTMCell(FusedCell):
    gates = 4

    def initial_state(self, batch: int):
        return (self._zeros(batch), self._zeros(batch))

    def forward(self, x, state):
        h, c = state
        y, h, c = torch.lstm(x, (h.unsqueeze(0), c.unsqueeze(0)), self.params(),
                             True, 1, 0.0, self.training, False, True)
        return y, (h.squeeze(0), c.squeeze(0))

    def step(self, x, state):
        h, c = state
        g = torch.addmm(self.bias_ih, x, self.weight_ih.t())
        g.addmm_(h, self.weight_hh.t()).add_(self.bias_hh)
        i, f, n, o = g.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(n)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class GRUCell(FusedCell):
    gates = 3

    def forward(self, x, state):
        y, h = torch.gru(x, state.unsqueeze(0), self.params(), True, 1, 0.0, self.training, False, True)
        return y, h.squeeze(0)

    def step(self, x, h):
        gi = torch.addmm(self.bias_ih, x, self.weight_ih.t())
        gh = torch.addmm(self.bias_hh, h, self.weight_hh.t())
        ir, iz, in_ = gi.chunk(3, 1)
        hr, hz, hn = gh.chunk(3, 1)
        r = torch.sigmoid(ir + hr)
        z = torch.sigmoid(iz + hz)
        n = torch.tanh(in_ + r * hn)
        h = n + z * (h - n)
        return h, h


class RNNCell(FusedCell):
    gates = 1
    options = {"nonlinearity": "tanh"}

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise PluginError(f"rnn: nonlinearity must be 'tanh' or 'relu', not {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size)

    def forward(self, x, state):
        fn = torch.rnn_tanh if self.nonlinearity == "tanh" else torch.rnn_relu
        y, h = fn(x, state.unsqueeze(0), self.params(), True, 1, 0.0, self.training, False, True)
        return y, h.squeeze(0)

    def step(self, x, h):
        a = torch.addmm(self.bias_ih, x, self.weight_ih.t())
        a.addmm_(h, self.weight_hh.t()).add_(self.bias_hh)
        h = torch.tanh(a) if self.nonlinearity == "tanh" else torch.relu(a)
        return h, h
