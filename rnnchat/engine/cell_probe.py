"""A plugin cell's first checks: one tiny forward and step, shapes, dtype and state checked.

``probe_cell`` runs when the plugin host verifies third-party cells (``PluginHost.verify_cells``):
sizes that all differ (batch 2, 3 steps, input 5, hidden 4), so a swapped dimension or the input
width returned as the output shows. ``check_built_layers`` runs when a model is built with a
third-party cell: each layer, as built at the model's sizes, reads one zero character. Either way a
cell that raises, returns the wrong width or a state that is not tensors is one ``PluginError``
naming its plugin, instead of a torch traceback deep in generation. The per-character path pays
nothing: these run once per cell check and once per model build.
"""

from __future__ import annotations

import contextlib

import torch

from rnnchat.core.errors import PluginError

BATCH, STEPS, INPUT, HIDDEN = 2, 3, 5, 4


@contextlib.contextmanager
def rng_kept():
    """Plugin code run inside leaves torch's, Python's and NumPy's global random states as they
    were: which plugins are installed must not change a seeded model (``torch.manual_seed(0)``
    then a build gives the same weights with or without a plugin checked in between)."""
    import random

    import numpy as np

    py, npy = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)


def probe_cell(name: str, cell_class) -> None:
    """Build ``cell_class(INPUT, HIDDEN)`` and run it once; a PluginError says what is wrong."""
    with rng_kept():
        cell = cell_class(INPUT, HIDDEN)
    if not isinstance(cell, torch.nn.Module):
        raise PluginError(f"cell {name!r}: {type(cell).__name__} is not a torch.nn.Module")
    _run_once(name, cell, BATCH, STEPS, INPUT, HIDDEN)


def check_built_layers(name: str, layers, sizes: list[int], hidden: int) -> None:
    """Each built layer of a model with a third-party cell reads one character (batch 1)."""
    from rnnchat.plugins.guard import describe
    from rnnchat.plugins.manager import get_host

    host = get_host()
    owner = host.owner_of("cells", name)
    if owner is None or host.plugins[owner].builtin:
        return
    if any(p.is_meta for layer in layers for p in layer.parameters()):
        return  # a shape-only skeleton (checkpoint shapes are compared on the meta device): nothing to run;
                # the real build that follows is checked
    for layer, size in zip(layers, sizes):
        try:
            _run_once(name, layer, 1, 1, size, hidden)
        except PluginError as exc:
            raise PluginError(f"{exc} (plugin {owner}, at the model's sizes)") from None
        except Exception as exc:  # noqa: BLE001 - the plugin's code failed: name it
            raise PluginError(f"cell {name!r} of plugin {owner} failed at the model's sizes "
                              f"(input {size}, hidden {hidden}): {describe(exc)}") from None


def _run_once(name: str, cell, batch: int, steps: int, inputs: int, hidden: int) -> None:
    """One forward and one step in eval mode, leaving the cell's mode and the RNG as they were."""
    training = cell.training
    cell.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            _forward_and_step(name, cell, batch, steps, inputs, hidden)
    finally:
        cell.train(training)


def _forward_and_step(name: str, cell, batch: int, steps: int, inputs: int, hidden: int) -> None:
    state = cell.initial_state(batch)
    _check_state(name, "initial_state", state)
    y, state = _pair(name, "forward", cell(torch.zeros(batch, steps, inputs), state))
    _check_output(name, "forward", y, (batch, steps, hidden), inputs)
    _check_state(name, "forward", state)
    h, state = _pair(name, "step", cell.step(torch.zeros(batch, inputs), state))
    _check_output(name, "step", h, (batch, hidden), inputs)
    _check_state(name, "step", state)


def _pair(name: str, method: str, result):
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise PluginError(f"cell {name!r}: {method}() must return (output, state), not {type(result).__name__}")
    return result


def _check_output(name: str, method: str, out, shape: tuple, inputs: int) -> None:
    if not isinstance(out, torch.Tensor):
        raise PluginError(f"cell {name!r}: {method}() returned {type(out).__name__} as its output, not a tensor")
    if tuple(out.shape) != shape:
        raise PluginError(f"cell {name!r}: {method}() returned an output of shape {list(out.shape)} for "
                          f"batch {shape[0]}, input {inputs}, hidden {shape[-1]}; expected {list(shape)}")
    if out.dtype != torch.float32:
        raise PluginError(f"cell {name!r}: {method}() returned {out.dtype} for float32 input")


def _check_state(name: str, method: str, state, depth: int = 0) -> None:
    if isinstance(state, torch.Tensor):
        return
    if isinstance(state, (tuple, list)) and state and depth < 4:
        for part in state:
            _check_state(name, method, part, depth + 1)
        return
    raise PluginError(f"cell {name!r}: {method}() gave a state of {type(state).__name__}; "
                      "a state is a tensor or a tuple of tensors")
