"""A plugin cell's first check, before any model uses it: one tiny forward and step, shapes checked.

Run by the plugin host (``PluginHost.verify_cells``) for every third-party cell, so that a cell that
raises, returns the wrong width or a state that is not tensors is named with its plugin in one line
there, instead of a torch traceback deep in generation. The sizes are all different (batch 2,
3 steps, input 5, hidden 4), so a swapped dimension or the input width returned as the output
shows. Per-character code pays nothing for this: it runs once per process and cell.
"""

from __future__ import annotations

import torch

from rnnchat.errors import PluginError

BATCH, STEPS, INPUT, HIDDEN = 2, 3, 5, 4


def probe_cell(name: str, cell_class) -> None:
    """Build ``cell_class(INPUT, HIDDEN)`` and run it once; a PluginError says what is wrong."""
    with torch.no_grad():
        cell = cell_class(INPUT, HIDDEN)
        if not isinstance(cell, torch.nn.Module):
            raise PluginError(f"cell {name!r}: {type(cell).__name__} is not a torch.nn.Module")
        state = cell.initial_state(BATCH)
        _check_state(name, "initial_state", state)
        y, state = _pair(name, "forward", cell(torch.zeros(BATCH, STEPS, INPUT), state))
        _check_output(name, "forward", y, (BATCH, STEPS, HIDDEN))
        _check_state(name, "forward", state)
        h, state = _pair(name, "step", cell.step(torch.zeros(BATCH, INPUT), state))
        _check_output(name, "step", h, (BATCH, HIDDEN))
        _check_state(name, "step", state)


def _pair(name: str, method: str, result):
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise PluginError(f"cell {name!r}: {method}() must return (output, state), not {type(result).__name__}")
    return result


def _check_output(name: str, method: str, out, shape: tuple) -> None:
    if not isinstance(out, torch.Tensor):
        raise PluginError(f"cell {name!r}: {method}() returned {type(out).__name__} as its output, not a tensor")
    if tuple(out.shape) != shape:
        raise PluginError(f"cell {name!r}: {method}() returned an output of shape {list(out.shape)} for "
                          f"batch {BATCH}, input {INPUT}, hidden {HIDDEN}; expected {list(shape)}")
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
