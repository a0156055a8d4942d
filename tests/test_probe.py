"""The probe engine: every built-in cell's quantities against the cells' own forward and step; plugin cells."""

import numpy as np
import pytest
import torch
from torch import nn

from rnnchat.engine.model import CharRNN, ModelConfig, registered_cell
from rnnchat.engine.probe import Probe
from rnnchat.engine.probe_cells import reader_for
from rnnchat.core.errors import PluginError, RnnchatError
from rnnchat.testing import check_probe
from tests.test_cells import run_steps

CELLS = [("lstm", {}), ("gru", {}), ("rnn", {}), ("rnn", {"nonlinearity": "relu"})]


def tiny_model(cell, options=None, cell_class=None):
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(cell=cell, vocab_size=11, hidden=8, layers=2, embedding=4,
                                cell_options=options or {}), cell_class=cell_class or registered_cell(cell))
    return model.eval()


def layer_steps(model, ids, state):
    """Per layer: the state after every character, from the cells' own ``step``."""
    x = model.embedding(torch.tensor(ids).unsqueeze(1))  # [T, 1, E]
    per_layer = []
    for i, layer in enumerate(model.layers):
        s, outs, states = state[i], [], []
        for t in range(len(ids)):
            y, s = layer.step(x[t], s)
            outs.append(y)
            states.append(s)
        per_layer.append((torch.cat(outs), states))
        x = torch.cat(outs).unsqueeze(1)
    return per_layer


@pytest.mark.parametrize("cell,options", CELLS, ids=["lstm", "gru", "rnn", "rnn-relu"])
def test_builtin_quantities_match_the_cells_own_step(cell, options):
    model = tiny_model(cell, options)
    ids = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7]
    with torch.no_grad():
        _, warm = model(torch.tensor([[2, 7, 1, 8]]))  # start away from zero
        acts, final = Probe(model).activations(ids, warm)
        steps = layer_steps(model, ids, warm)
    for layer, (h, states) in enumerate(steps, start=1):
        assert np.allclose(acts[(layer, "h")], h.numpy(), atol=1e-5), f"layer {layer}: probe h != the cell's h"
        if cell == "lstm":
            c = torch.cat([s[1] for s in states]).numpy()
            assert np.allclose(acts[(layer, "c")], c, atol=1e-5)
            o, cc = acts[(layer, "o")], acts[(layer, "c")]
            assert np.allclose(acts[(layer, "h")], o * np.tanh(cc), atol=1e-6)
            f, i, g = acts[(layer, "f")], acts[(layer, "i")], acts[(layer, "g")]
            assert np.allclose(cc[1:], f[1:] * cc[:-1] + i[1:] * g[1:], atol=1e-5)
        if cell == "gru":  # the equations' update gate: h' = (1 - z) h + z n
            h_all, z, n = acts[(layer, "h")], acts[(layer, "z")], acts[(layer, "n")]
            assert np.allclose(h_all[1:], (1 - z[1:]) * h_all[:-1] + z[1:] * n[1:], atol=1e-5)
        for q in Probe(model).quantities():
            if q.kind == "gate":
                a = acts[(q.layer, q.name)]
                assert a.min() >= 0 and a.max() <= 1
    flat = lambda s: torch.cat([t.flatten() for t in (s if isinstance(s, tuple) else (s,))])  # noqa: E731
    for layer, (_, states) in enumerate(steps):
        assert torch.allclose(flat(final[layer]), flat(states[-1]), atol=1e-5), "the final state differs"


@pytest.mark.parametrize("cell,options", CELLS, ids=["lstm", "gru", "rnn", "rnn-relu"])
def test_check_probe_passes_on_every_builtin_cell(cell, options):
    kinds = check_probe(cell, options)
    expected = {"lstm": "chifgo", "gru": "hrzn", "rnn": "h"}[cell]
    assert set(kinds) == set(expected)


def test_check_probe_passes_on_every_registered_cell():
    from rnnchat.plugins.manager import get_host

    host = get_host()
    host.verify_cells()
    for name in host.cells:  # the built-ins and any installed plugin's cells
        check_probe(name)


def test_chunks_carry_the_state_and_the_state_given_is_untouched():
    model = tiny_model("lstm")
    ids = list(np.random.default_rng(0).integers(0, 11, 50))
    probe = Probe(model)
    with torch.no_grad():
        _, warm = model(torch.tensor([[1, 2, 3]]))
    before = [t.clone() for s in warm for t in s]
    whole, _ = probe.activations(ids, warm)
    parts = [out for _, out, _ in probe.chunks(ids, warm, chunk=7)]
    joined = np.concatenate([p[(2, "c")] for p in parts])
    assert np.allclose(joined, whole[(2, "c")], atol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(before, [t for s in warm for t in s]))


def test_strongest_at_lists_the_most_active_units_at_a_character():
    from rnnchat.engine.probe import strongest_at

    acts = {(1, "h"): np.array([[0.1, -0.9, 0.2], [0.0, 0.0, 0.5]]), (2, "c"): np.array([[2.0, 0.0, 0.3], [0, 0, 0]])}
    assert strongest_at(acts, 0, 3) == [(2, "c", 0, 2.0), (1, "h", 1, -0.9), (2, "c", 2, 0.3)]
    with pytest.raises(IndexError):
        strongest_at(acts, 2)


def test_select_returns_only_what_was_asked_and_refuses_unknown_quantities():
    probe = Probe(tiny_model("gru"))
    acts, _ = probe.activations([1, 2, 3], select=[(2, "z")])
    assert list(acts) == [(2, "z")] and acts[(2, "z")].shape == (3, 8)
    with pytest.raises(RnnchatError, match="no quantity 'c'"):
        probe.activations([1, 2], select=[(1, "c")])


class Leaky(nn.Module):
    """A plugin-style cell with a tensor state and no probe contract."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.ih = nn.Linear(input_size, hidden_size)
        self.hh = nn.Linear(hidden_size, hidden_size, bias=False)

    def initial_state(self, batch):
        return torch.zeros(batch, self.hidden_size)

    def step(self, x, h):
        h = 0.5 * h + 0.5 * torch.tanh(self.ih(x) + self.hh(h))
        return h, h

    def forward(self, x, state):
        return run_steps(self, x, state)


class LeakyWithContract(Leaky):
    QUANTITIES = {"h": "state", "u": "value"}

    def quantities(self, x, h):
        y, _ = self.forward(x, h)
        prev = torch.cat([h.unsqueeze(1), y[:, :-1]], 1)
        return {"h": y, "u": torch.tanh(self.ih(x) + self.hh(prev))}


class PairState(Leaky):
    """No contract, a tuple state (h, running sum)."""

    def initial_state(self, batch):
        return (torch.zeros(batch, self.hidden_size), torch.zeros(batch, self.hidden_size))

    def step(self, x, state):
        h, total = state
        h, _ = Leaky.step(self, x, h)
        return h, (h, total + h)


def test_plugin_cell_without_the_contract_shows_its_state_only():
    assert check_probe(Leaky) == {"h": "state"}
    assert check_probe(PairState) == {"h": "state", "c": "state"}
    model = tiny_model("leaky", cell_class=PairState)
    acts, _ = Probe(model).activations([1, 2, 3, 4])
    assert np.allclose(acts[(1, "c")], np.cumsum(acts[(1, "h")], axis=0), atol=1e-6)
    assert {q.how for q in Probe(model).quantities()} == {"state"}


def test_plugin_cell_with_the_contract_shows_its_quantities():
    assert check_probe(LeakyWithContract) == {"h": "state", "u": "value"}
    model = tiny_model("leaky", cell_class=LeakyWithContract)
    acts, _ = Probe(model).activations([1, 2, 3, 4, 5])
    h = acts[(1, "h")]
    assert np.allclose(h[1:], 0.5 * h[:-1] + 0.5 * acts[(1, "u")][1:], atol=1e-6)


@pytest.mark.parametrize("declared,result,match", [
    ({"H": "state"}, None, "quantity name 'H'"),
    ({"h": "gates"}, None, "kind 'gates'"),
    ({"h": "state"}, {"x": None}, "returned \\['x'\\]"),
    ({"h": "state"}, {"h": "nan"}, "NaN"),
    ({"h": "state"}, {"h": "2d"}, "float tensor"),
])
def test_a_broken_contract_is_a_one_line_plugin_error(declared, result, match):
    class Broken(Leaky):
        QUANTITIES = declared

        def quantities(self, x, h):
            y, _ = self.forward(x, h)
            if result is None:
                return {"h": y}
            kind = next(iter(result.values()))
            return {next(iter(result)): y * float("nan") if kind == "nan" else y[0] if kind == "2d" else y}

    with pytest.raises(PluginError, match=match):
        reader = reader_for(Broken(4, 8))
        reader.run(torch.zeros(1, 3, 4), torch.zeros(1, 8))
