"""Choosing an engine's per-character path, and the fast-path contract for cells.

Three paths produce the same characters (tests check it); the engine picks one
when it loads a model:

========== ===================================================================
numpy      CPU, when every layer has a NumPy layer (built-in cells, or a cell
           whose ``CellSpec.fast_path`` builds one): weights exported once,
           one ``np.dot`` per layer, sampling in NumPy (:mod:`fast_cpu`).
cuda-graph CUDA: one captured graph per character, sampling on the device
           (:mod:`fast_cuda`).
torch      everything else (MPS, third-party cells without a fast path, a
           fast path that failed its check): ``model.step`` called directly,
           so the engine adds nothing around a cell's own ``step``.
========== ===================================================================

``RNNCHAT_FAST=0`` forces the torch path (for comparisons and debugging);
``RNNCHAT_BLAS_THREADS`` fixes NumPy's BLAS threads for the CPU path (default:
timed per stream, see :mod:`rnnchat.engine.blas_choice`).

The fast-path contract
----------------------

A plugin can give its cell a CPU fast path::

    CellSpec("mycell", "mypkg.cell:MyCell", "...", fast_path="mypkg.fast:build")

``build(cell, device)`` is called once per layer when a model loads, with the
cell module (weights loaded) and the ``torch.device``; it returns ``None``
(no fast path there) or a layer object with:

``new_state(state) -> S``
    the cell's own batch-1 state (what its ``step`` takes) -> private buffers.
``step(x, s) -> h``
    ``x``: float32 NumPy vector ``[input_size]``; updates ``s`` in place and
    returns ``h`` ``[hidden_size]`` (may be a view into ``s``, read before the
    next call).
``export_state(s) -> state``
    new torch tensors in the cell's own state format (batch 1).
``bind_table(inputs) -> bool`` and ``step_row(i, s) -> h`` (optional)
    for the first layer: ``inputs`` is the embedding table ``[V, input_size]``;
    returning True promises that ``step_row(i, s)`` equals ``step(inputs[i], s)``.

When a model loads, every fast layer is checked once against the cell's own
``step`` (a random state and input, two steps); a layer that disagrees, or whose
builder raises, is dropped with a warning and the model runs on the torch path.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import torch

from rnnchat.core import env
from rnnchat.engine import fast_cpu

CHECK_TOLERANCE = 1e-4


def enabled() -> bool:
    return env.fast()


def _builder(cell_name: str):
    """The fast-path builder for a cell name: its spec's ``fast_path`` string, else the
    built-in NumPy layers (which only accept the exact built-in classes)."""
    try:
        from rnnchat.plugins.manager import get_host

        spec = get_host().cells.get(cell_name)
    except Exception:  # the host itself failed: no plugin fast paths
        spec = None
    path = getattr(spec, "fast_path", None)
    if not path:
        return fast_cpu.builtin_layer
    if callable(path):
        return path
    module, _, attr = str(path).partition(":")
    return getattr(importlib.import_module(module), attr)


def build_fast(model, device: torch.device, cell_name: str | None = None):
    """The fast per-character model for ``model`` on ``device``, or None for the torch path."""
    if not enabled():
        return None
    device = torch.device(device)
    if device.type == "cuda":
        from rnnchat.engine.fast_cuda import DeviceSampledModel

        return DeviceSampledModel(model, device)
    if device.type != "cpu":
        return None
    cell_name = cell_name or getattr(getattr(model, "config", None), "cell", "")
    try:
        build = _builder(cell_name)
        layers = [build(cell, device) for cell in model.layers]
    except Exception as exc:
        warnings.warn(f"cell {cell_name!r}: its fast path failed to build ({exc}); using torch steps",
                      RuntimeWarning, stacklevel=2)
        return None
    if any(layer is None for layer in layers):
        return None
    from rnnchat.engine.blas_choice import ThreadChoice

    threads = ThreadChoice()  # starts at 1 thread; each stream times the candidates (blas_choice.py)
    fm = fast_cpu.NumpyModel(model, layers)
    fm.threads = threads
    problem = check(fm, model)
    if problem:
        warnings.warn(f"cell {cell_name!r}: its fast path disagrees with its step ({problem}); "
                      "using torch steps", RuntimeWarning, stacklevel=2)
        return None
    return fm


def check(fm, model, steps: int = 2) -> str | None:
    """Compare the fast model with ``model.step`` from a random state; None if they agree."""
    gen = torch.Generator().manual_seed(0)
    try:
        with torch.inference_mode():
            state = [
                _randomised(s, gen) for s in model.initial_state(1)
            ]
            st = fm.new_state(state)
            ids = torch.randint(0, model.head.out_features, (steps,), generator=gen)
            ref_state = state
            for i in ids.tolist():
                ref, ref_state = model.step(torch.tensor([i]), ref_state)
                got = st.step(i)
                err = float(np.max(np.abs(got - ref[0].float().numpy())))
                if not err <= CHECK_TOLERANCE * max(1.0, float(ref.abs().max())):
                    return f"logits differ by {err:.2e}"
            for a, b in zip(_flat(st.export()), _flat(ref_state)):
                if a.shape != b.shape or not torch.allclose(a.float(), b.float(), atol=CHECK_TOLERANCE):
                    return "states differ"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _randomised(state, gen):
    from rnnchat.engine.model import state_map

    return state_map(lambda t: (torch.rand(t.shape, generator=gen) * 2 - 1).to(t.device, t.dtype) * 0.5, state)


def _flat(state) -> list:
    from rnnchat.engine.model import state_map

    out: list = []
    state_map(out.append, state)
    return out
