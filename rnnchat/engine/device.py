"""Pick the device: CUDA, then Apple MPS, then CPU; ``--device``/``RNNCHAT_DEVICE`` override."""

from __future__ import annotations

import os

import torch

from rnnchat.core import env
from rnnchat.core.errors import DeviceError


def pick_device(requested: str | None = None) -> torch.device:
    name = requested or env.device()
    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {name!r}: use cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} requested but CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"device {name!r} requested but Apple MPS is not available here; use --device cpu")
        return device
    raise DeviceError(f"unsupported device {name!r}: use cpu, cuda, cuda:N or mps")


def set_cpu_threads(shared: int | None = None) -> None:
    """Use the physical cores, not more: oversubscription slows small matrices down. ``shared``:
    this process's share of the cores when several training processes run on one machine."""
    wanted = shared or env.threads() or min(os.cpu_count() or 1, 8)
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
