"""minGRU and minLSTM: the log-space scan, forward against step and against the paper's equations."""

import subprocess
import sys

import pytest
import torch

from rnnchat.testing import check_cell
from rnnchat_mingru.cells import MinGRUCell, MinLSTMCell, g, log_g, scan_log, scan_sequential

CELLS = {"mingru": MinGRUCell, "minlstm": MinLSTMCell}


def test_g_is_positive_continuous_and_log_g_matches():
    x = torch.linspace(-30, 30, 2001, dtype=torch.float64)
    assert (g(x) > 0).all()
    assert torch.allclose(log_g(x), torch.log(g(x)), atol=1e-12)
    assert g(torch.tensor(0.0)) == 0.5 and abs(float(g(torch.tensor(-1e-9))) - 0.5) < 1e-8
    assert float(g(torch.tensor(2.0))) == 2.5


@pytest.mark.parametrize("zero_h0", [False, True])
def test_log_space_scan_solves_the_linear_recurrence(zero_h0):
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(3, 50, 4, generator=gen, dtype=torch.float64) * 0.98 + 0.01
    b = torch.rand(3, 50, 4, generator=gen, dtype=torch.float64) * 2
    h0 = torch.zeros(3, 4, dtype=torch.float64) if zero_h0 else torch.rand(3, 4, generator=gen, dtype=torch.float64)
    expected = scan_sequential(a, b, h0)
    assert torch.allclose(scan_log(a.log(), b.log(), h0), expected, rtol=1e-10, atol=1e-12)


def paper_sequential(cell, x, h):
    """The paper's sequential-mode equations, written out from the cell's weights."""
    H = cell.hidden_size
    k = x @ cell.proj.weight.T + cell.proj.bias
    out = []
    for t in range(x.shape[1]):
        if isinstance(cell, MinGRUCell):
            z = torch.sigmoid(k[:, t, :H])
            h_tilde = g(k[:, t, H:])
            h = (1 - z) * h + z * h_tilde
        else:
            f, i = torch.sigmoid(k[:, t, :H]), torch.sigmoid(k[:, t, H:2 * H])
            h_tilde = g(k[:, t, 2 * H:])
            h = f / (f + i) * h + i / (f + i) * h_tilde
        out.append(h)
    return torch.stack(out, 1), h


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("chunk", [1, 3, 256])
def test_forward_agrees_with_step_and_with_the_equations(name, chunk):
    torch.manual_seed(0)
    cell = CELLS[name](6, 8, chunk=chunk).double()
    x = torch.randn(2, 17, 6, dtype=torch.float64) * 3
    with torch.no_grad():
        _, h0 = cell(torch.randn(2, 4, 6, dtype=torch.float64), cell.initial_state(2))  # a non-zero state
        y, final = cell(x, h0)
        h, steps = h0, []
        for t in range(x.shape[1]):
            out, h = cell.step(x[:, t], h)
            steps.append(out)
        ref, ref_final = paper_sequential(cell, x, h0)
    assert torch.allclose(y, torch.stack(steps, 1), rtol=1e-10, atol=1e-12)
    assert torch.allclose(final, h, rtol=1e-10, atol=1e-12)
    assert torch.allclose(y, ref, rtol=1e-10, atol=1e-12) and torch.allclose(final, ref_final, rtol=1e-10)


@pytest.mark.parametrize("name", CELLS)
def test_long_prompt_keeps_float32_precision(name):
    """Chunking keeps the cumulative log-gates small: 3000 steps in one forward still match stepping."""
    torch.manual_seed(1)
    cell = CELLS[name](4, 8)
    x = torch.randn(1, 3000, 4) * 2
    with torch.no_grad():
        y, final = cell(x, cell.initial_state(1))
        h = cell.initial_state(1).double()
        cell64 = CELLS[name](4, 8).double()
        cell64.load_state_dict(cell.state_dict())
        for t in range(x.shape[1]):
            _, h = cell64.step(x[:, t].double(), h)
    assert torch.allclose(final.double(), h, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("options", [{}, {"chunk": 2}])
def test_contract(name, options):
    check_cell(name, options)


def test_contract_on_the_class_before_it_is_registered():
    check_cell(MinLSTMCell, {"chunk": 4})


@pytest.mark.parametrize("chunk", [0, -1, 2.5, True])
def test_bad_chunk_is_refused(chunk):
    with pytest.raises(ValueError, match="chunk must be"):
        MinGRUCell(4, 8, chunk=chunk)


def test_importing_the_plugin_does_not_import_torch():
    code = "import sys, rnnchat_mingru; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
