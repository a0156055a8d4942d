"""torch.distributed helpers: a no-op in a single process, DDP under torchrun."""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as td
from torch.nn.parallel import DistributedDataParallel


def launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return td.is_available() and td.is_initialized()


def rank() -> int:
    return td.get_rank() if active() else 0


def world_size() -> int:
    return td.get_world_size() if active() else 1


def local_device(requested: torch.device) -> torch.device:
    if requested.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return requested


def init(device: torch.device) -> None:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA)."""
    if not launched() or active():
        return
    timeout = datetime.timedelta(seconds=float(os.environ.get("RNNCHAT_DIST_TIMEOUT", "120")))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    td.init_process_group(backend=backend, timeout=timeout)


def wrap(model: torch.nn.Module, device: torch.device):
    if not active():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def barrier() -> None:
    if active():
        td.barrier()


def agree_max(value: float, device: torch.device) -> float:
    """All ranks use the slowest rank's clock, so a time budget ends on the same step everywhere."""
    t = torch.tensor([value], dtype=torch.float64, device=device if device.type == "cuda" else "cpu")
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return float(t.item())


def shutdown() -> None:
    if active():
        td.destroy_process_group()
