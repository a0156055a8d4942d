"""minGRU and minLSTM (Feng et al., 2024, "Were RNNs All We Needed?", arXiv:2410.01201).

Both cells drop the hidden state from their gates, so every gate and every
candidate state of a sequence is computed at once from the inputs, and the
recurrence left over is linear:

    h_t = a_t * h_{t-1} + b_t

minGRU:   z_t = sigmoid(W_z x_t),  h~_t = g(W_h x_t),  a_t = 1 - z_t,  b_t = z_t * h~_t
minLSTM:  f_t = sigmoid(W_f x_t), i_t = sigmoid(W_i x_t), h~_t = g(W_h x_t),
          f'_t = f_t / (f_t + i_t), i'_t = i_t / (f_t + i_t),  a_t = f'_t,  b_t = i'_t * h~_t

with g(x) = x + 0.5 for x >= 0 and sigmoid(x) below, which keeps h~ (and so h)
positive. ``forward`` solves the recurrence over a whole sequence as a parallel
scan in log space (the paper's formulation):

    A_t = sum_{k<=t} log a_k
    log h_t = A_t + logcumsumexp([log h_0, log b_1 - A_1, ..., log b_t - A_t])

``step`` is the plain one-character recurrence in linear space. A sequence is
scanned in chunks of ``chunk`` steps (the state carried from one chunk to the
next) so that A_t stays small and float32 keeps its precision on long prompts.
The scan always runs in float32 (or float64), also under autocast.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def g(x: torch.Tensor) -> torch.Tensor:
    """x + 0.5 for x >= 0, sigmoid(x) below: continuous, positive, linear growth."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: torch.Tensor) -> torch.Tensor:
    """log(g(x)), computed without forming g(x) for very negative x."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def scan_log(log_a: torch.Tensor, log_b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """Solve h_t = a_t h_{t-1} + b_t for t = 1..T given log a, log b [B,T,H] and h0 [B,H] (>= 0).

    Returns h [B,T,H].
    """
    a_star = torch.cumsum(log_a, dim=1)
    log_h0 = torch.log(h0.clamp_min(torch.finfo(h0.dtype).tiny)).unsqueeze(1)
    values = torch.cat([log_h0, log_b - a_star], dim=1)
    log_h = a_star + torch.logcumsumexp(values, dim=1)[:, 1:]
    return torch.exp(log_h)


def scan_sequential(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """The same recurrence, one time step after another (the reference for tests)."""
    h, out = h0, []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


class _MinCell(nn.Module):
    """Shared parts: one input projection for all gates, a positive hidden state, the chunked scan."""

    projections = 2
    options = {"chunk": 256}

    def __init__(self, input_size: int, hidden_size: int, chunk: int = 256) -> None:
        super().__init__()
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"{type(self).__name__}: chunk must be a whole number >= 1, not {chunk!r}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.chunk = chunk
        self.proj = nn.Linear(input_size, self.projections * hidden_size)
        bound = 1.0 / math.sqrt(input_size)
        nn.init.uniform_(self.proj.weight, -bound, bound)
        nn.init.zeros_(self.proj.bias)

    def initial_state(self, batch: int) -> torch.Tensor:
        w = self.proj.weight
        return torch.zeros(batch, self.hidden_size, device=w.device, dtype=w.dtype)

    def _coefficients_log(self, k: torch.Tensor):
        raise NotImplementedError

    def _coefficients(self, k: torch.Tensor):
        raise NotImplementedError

    def forward(self, x: torch.Tensor, state: torch.Tensor):
        k = self.proj(x)
        dtype = torch.promote_types(state.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            k = k.to(dtype)
            h = state.to(dtype)
            outs = []
            for s in range(0, k.shape[1], self.chunk):
                log_a, log_b = self._coefficients_log(k[:, s:s + self.chunk])
                y = scan_log(log_a, log_b, h)
                h = y[:, -1]
                outs.append(y)
            y = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)
        return y, h.to(state.dtype)

    def step(self, x: torch.Tensor, state: torch.Tensor):
        k = F.linear(x, self.proj.weight, self.proj.bias)
        a, b = self._coefficients(k.to(state.dtype))
        h = a * state + b
        return h, h


class MinGRUCell(_MinCell):
    """minGRU: h_t = (1 - z_t) h_{t-1} + z_t g(W_h x_t), z_t = sigmoid(W_z x_t)."""

    projections = 2

    def _coefficients_log(self, k):
        kz, kh = k.chunk(2, dim=-1)
        return -F.softplus(kz), -F.softplus(-kz) + log_g(kh)  # log(1 - z), log z + log h~

    def _coefficients(self, k):
        kz, kh = k.chunk(2, dim=-1)
        z = torch.sigmoid(kz)
        return 1 - z, z * g(kh)


class MinLSTMCell(_MinCell):
    """minLSTM: h_t = f'_t h_{t-1} + i'_t g(W_h x_t), with f', i' = f, i normalised to sum to 1."""

    projections = 3

    def _coefficients_log(self, k):
        kf, ki, kh = k.chunk(3, dim=-1)
        diff = F.softplus(-kf) - F.softplus(-ki)  # log i - log f
        return -F.softplus(diff), -F.softplus(-diff) + log_g(kh)  # log f', log i' + log h~

    def _coefficients(self, k):
        kf, ki, kh = k.chunk(3, dim=-1)
        f, i = torch.sigmoid(kf), torch.sigmoid(ki)
        return f / (f + i), i / (f + i) * g(kh)
