"""The one set of helpers over a model's recurrent state (the "state tree").

A state is a list over layers; each layer's state is a tensor or a tuple of tensors (an
LSTM's ``(h, c)``). Everything that walks that tree lives here: mapping a function over
it, comparing shapes, and the safetensors form a conversation keeps on disk (never pickle).
"""

from __future__ import annotations

import re

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from rnnchat.core.errors import RnnchatError

_KEY = re.compile(r"^s\.(\d+)(?:\.(\d+))?$")


class StateError(RnnchatError):
    """A saved state that cannot be read back (corrupt bytes, missing layers)."""


def state_map(fn, state):
    """Apply ``fn`` to every tensor of a (nested list/tuple of) state; the structure is kept."""
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, (list, tuple)):
        return type(state)(state_map(fn, s) for s in state)
    raise TypeError(f"state must be tensors or tuples of tensors, not {type(state).__name__}")


def clone_state(state):
    """A detached copy of ``state`` (same structure), safe to keep while the original goes on."""
    return state_map(lambda t: t.detach().clone(), state)


def same_shapes(a, b) -> bool:
    """True when two states have the same structure and tensor shapes."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_shapes(x, y) for x, y in zip(a, b))
    return False


def dtypes(state) -> list:
    """The dtype of every tensor of ``state``, in order."""
    found: list = []
    state_map(lambda t: found.append(t.dtype) or t, state)
    return found


def state_to_bytes(state, logits=None) -> bytes:
    """A model state -> safetensors bytes.

    Keys: ``s.L`` for a layer whose state is one tensor, ``s.L.J`` for the J-th tensor of a tuple,
    ``logits`` for the logits of the last character read (absent at the start).
    """
    tensors = {}
    for i, layer in enumerate(state):
        if isinstance(layer, torch.Tensor):
            tensors[f"s.{i}"] = layer.detach().to("cpu").contiguous()
        elif isinstance(layer, (tuple, list)):
            for j, t in enumerate(layer):
                tensors[f"s.{i}.{j}"] = t.detach().to("cpu").contiguous()
        else:
            raise TypeError(f"layer {i} state is a {type(layer).__name__}, not tensors")
    if logits is not None:
        tensors["logits"] = logits.detach().to("cpu").contiguous()
    return st_save(tensors)


def state_from_bytes(blob: bytes, device) -> tuple[list, object]:
    """The inverse of :func:`state_to_bytes`: (state, logits or None) on ``device``."""
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise StateError(f"a saved state is corrupt: {exc}") from None
    layers: dict[int, dict[int | None, torch.Tensor]] = {}
    for key, t in tensors.items():
        if key == "logits":
            continue
        m = _KEY.match(key)
        if not m:
            raise StateError(f"a saved state has an unexpected entry {key!r}")
        sub = int(m.group(2)) if m.group(2) is not None else None
        layers.setdefault(int(m.group(1)), {})[sub] = t.to(device)
    if sorted(layers) != list(range(len(layers))):
        raise StateError("a saved state is missing layers")
    state = []
    for i in range(len(layers)):
        parts = layers[i]
        if None in parts:
            state.append(parts[None])
        else:
            state.append(tuple(parts[j] for j in range(len(parts))))
    logits = tensors.get("logits")
    return state, (logits.to(device) if logits is not None else None)
