"""Built-in cells: fused forward == repeated step == the textbook equations."""

import pytest
import torch

from rnnchat.engine.cells import GRUCell, LSTMCell, RNNCell
from rnnchat.core.errors import PluginError

B, T, I, H = 3, 7, 5, 8


def run_steps(cell, x, state):
    ys = []
    for t in range(x.shape[1]):
        y, state = cell.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, 1), state


def lstm_equations(cell, x, state):
    h, c = state
    Wi, Wf, Wc, Wo = cell.weight_ih.chunk(4)
    Ui, Uf, Uc, Uo = cell.weight_hh.chunk(4)
    bi, bf, bc, bo = (cell.bias_ih + cell.bias_hh).chunk(4)
    ys = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        i = torch.sigmoid(xt @ Wi.T + h @ Ui.T + bi)
        f = torch.sigmoid(xt @ Wf.T + h @ Uf.T + bf)
        o = torch.sigmoid(xt @ Wo.T + h @ Uo.T + bo)
        c = f * c + i * torch.tanh(xt @ Wc.T + h @ Uc.T + bc)
        h = o * torch.tanh(c)
        ys.append(h)
    return torch.stack(ys, 1), (h, c)


def gru_equations(cell, x, h):
    # the equations; PyTorch's z is 1 - z here and b_hn sits inside the reset product
    Wr, Wz, Wh = cell.weight_ih.chunk(3)
    Ur, Uz, Uh = cell.weight_hh.chunk(3)
    bir, biz, bih = cell.bias_ih.chunk(3)
    bhr, bhz, bhh = cell.bias_hh.chunk(3)
    ys = []
    for t in range(x.shape[1]):
        xt = x[:, t]
        r = torch.sigmoid(xt @ Wr.T + h @ Ur.T + bir + bhr)
        z = 1 - torch.sigmoid(xt @ Wz.T + h @ Uz.T + biz + bhz)
        h_tilde = torch.tanh(xt @ Wh.T + r * (h @ Uh.T + bhh) + bih)
        h = (1 - z) * h + z * h_tilde
        ys.append(h)
    return torch.stack(ys, 1), h


def rnn_equations(cell, x, h, fn=torch.tanh):
    ys = []
    for t in range(x.shape[1]):
        h = fn(x[:, t] @ cell.weight_ih.T + h @ cell.weight_hh.T + cell.bias_ih + cell.bias_hh)
        ys.append(h)
    return torch.stack(ys, 1), h


CASES = [
    (LSTMCell, {}, lstm_equations),
    (GRUCell, {}, gru_equations),
    (RNNCell, {}, rnn_equations),
    (RNNCell, {"nonlinearity": "relu"}, lambda c, x, h: rnn_equations(c, x, h, torch.relu)),
]


def flat(state):
    return torch.cat([s.reshape(-1) for s in state]) if isinstance(state, tuple) else state.reshape(-1)


@pytest.mark.parametrize("cls,opts,equations", CASES, ids=["lstm", "gru", "rnn-tanh", "rnn-relu"])
def test_forward_step_and_equations_agree(cls, opts, equations):
    torch.manual_seed(0)
    cell = cls(I, H, **opts)
    x = torch.randn(B, T, I)
    # a non-zero starting state: chat sessions carry state across turns
    state = cell.initial_state(B)
    state = tuple(torch.randn_like(s) for s in state) if isinstance(state, tuple) else torch.randn_like(state)
    with torch.no_grad():
        y_fwd, s_fwd = cell(x, state)
        y_step, s_step = run_steps(cell, x, state)
        y_eq, s_eq = equations(cell, x, state)
    torch.testing.assert_close(y_fwd, y_step, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(y_fwd, y_eq, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(flat(s_fwd), flat(s_step), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(flat(s_fwd), flat(s_eq), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls,gates", [(LSTMCell, 4), (GRUCell, 3), (RNNCell, 1)])
def test_pytorch_layout_and_state_shapes(cls, gates):
    cell = cls(I, H)
    assert cell.weight_ih.shape == (gates * H, I)
    assert cell.weight_hh.shape == (gates * H, H)
    assert cell.bias_ih.shape == cell.bias_hh.shape == (gates * H,)
    state = cell.initial_state(B)
    for s in state if isinstance(state, tuple) else (state,):
        assert s.shape == (B, H) and s.dtype == torch.float32 and not s.any()


def test_matches_torch_nn_lstm_weights():
    torch.manual_seed(1)
    ref = torch.nn.LSTM(I, H, batch_first=True)
    cell = LSTMCell(I, H)
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in ref.state_dict().items()})
    x = torch.randn(B, T, I)
    with torch.no_grad():
        y_ref, _ = ref(x)
        y, _ = cell(x, cell.initial_state(B))
    torch.testing.assert_close(y, y_ref)


def test_unknown_option_is_a_clear_error():
    with pytest.raises(PluginError, match="unknown option"):
        LSTMCell(I, H, nonlinearity="relu")
    with pytest.raises(PluginError, match="tanh' or 'relu"):
        RNNCell(I, H, nonlinearity="sigmoid")


def test_gradients_reach_every_parameter():
    for cls in (LSTMCell, GRUCell, RNNCell):
        cell = cls(I, H)
        y, _ = cell(torch.randn(B, T, I), cell.initial_state(B))
        y.sum().backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cell.parameters())
