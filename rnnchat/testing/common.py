"""Helpers the contract checks share: devices, plugin reloading, comparing states."""

from __future__ import annotations

import torch

# ---- helpers --------------------------------------------------------------------------------------------


def available_devices() -> list[torch.device]:
    """CPU, plus CUDA and Apple MPS where present."""
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append(torch.device("mps"))
    return devices


def reload_plugins():
    """Load the plugins again (after installing one, or changing ``RNNCHAT_LOAD_PLUGINS``)."""
    from rnnchat.plugins.manager import get_host
    return get_host(reload=True)


def _tensors(state) -> list[torch.Tensor]:
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, (list, tuple)):
        return [t for s in state for t in _tensors(s)]
    raise AssertionError(f"a state must be a tensor or a tuple of tensors, not {type(state).__name__}")


def _structure(state):
    if isinstance(state, torch.Tensor):
        return "tensor"
    return (type(state).__name__, tuple(_structure(s) for s in state))


def _max_diff(a, b) -> float:
    ta, tb = _tensors(a), _tensors(b)
    assert len(ta) == len(tb), f"states have {len(ta)} and {len(tb)} tensors"
    return max(float((x.detach().double().cpu() - y.detach().double().cpu()).abs().max()) if x.numel() else 0.0
               for x, y in zip(ta, tb))


def _scale(*values) -> float:
    return max(1.0, max(float(t.detach().abs().max()) for v in values for t in _tensors(v) if t.numel()))


def _close(what: str, a, b, tol: float) -> None:
    diff = _max_diff(a, b)
    limit = tol * _scale(a, b)
    assert diff <= limit, f"{what}: they differ by {diff:.3g} (allowed {limit:.3g})"
