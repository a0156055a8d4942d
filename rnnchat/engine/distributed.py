"""torch.distributed helpers: a no-op in a single process, DDP under torchrun."""

from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as td
from torch.nn.parallel import DistributedDataParallel

from rnnchat.core import env
from rnnchat.core.errors import RnnchatError, first_line


def launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return td.is_available() and td.is_initialized()


def rank() -> int:
    return td.get_rank() if active() else 0


def world_size() -> int:
    return td.get_world_size() if active() else 1


def cpu_threads_per_process() -> int | None:
    """Under torchrun on the CPU, share the cores among this machine's processes (None: not launched)."""
    if not launched() or env.threads() is not None:
        return None
    local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return max(1, min(os.cpu_count() or 1, 8 * local) // max(1, local))


def local_device(requested: torch.device) -> torch.device:
    if requested.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return requested


def init(device: torch.device) -> None:
    """Join the process group torchrun set up (gloo on CPU, NCCL on CUDA)."""
    if not launched() or active():
        return
    seconds = env.dist_timeout()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    try:
        td.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=seconds))
    except (RuntimeError, ValueError) as exc:  # DistStoreError (a peer never came), a bad MASTER_* value
        where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        first = first_line(exc)
        raise RnnchatError(f"rank {os.environ.get('RANK', '?')}: could not join the other training processes at "
                           f"{where} within {seconds:g} s ({first[:160]}); start every rank with the same "
                           f"MASTER_ADDR, MASTER_PORT and WORLD_SIZE, or raise RNNCHAT_DIST_TIMEOUT") from None


def wrap(model: torch.nn.Module, device: torch.device):
    if not active():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def barrier() -> None:
    if active():
        td.barrier()


def _comm_device(device: torch.device) -> str:
    return "cuda" if device.type == "cuda" else "cpu"


def agree(elapsed: float, stop: bool, device: torch.device) -> tuple[float, bool]:
    """One all-reduce per step: the slowest rank's clock and whether any rank wants to stop.

    Every rank then ends a time budget, or an interrupted run, on the same step.
    """
    if not active():
        return elapsed, stop
    t = torch.tensor([elapsed, 1.0 if stop else 0.0], dtype=torch.float64, device=_comm_device(device))
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return float(t[0].item()), bool(t[1].item() > 0)


def all_ok(ok: bool, device: torch.device) -> bool:
    """True on every rank when every rank says ok."""
    if not active():
        return ok
    t = torch.tensor([1 if ok else 0], dtype=torch.int64, device=_comm_device(device))
    td.all_reduce(t, op=td.ReduceOp.MIN)
    return bool(t.item())


def sum_pair(total: float, count: int, device: torch.device) -> tuple[float, int]:
    """Sum a (loss total, count) pair over ranks."""
    if not active():
        return total, count
    t = torch.tensor([total, float(count)], dtype=torch.float64, device=_comm_device(device))
    td.all_reduce(t, op=td.ReduceOp.SUM)
    return float(t[0].item()), int(round(t[1].item()))


def broadcast_bytes(data: bytes | None, device: torch.device) -> bytes:
    """Rank 0's bytes on every rank (used to share the resume state across machines, no pickle)."""
    if not active():
        return data or b""
    dev = _comm_device(device)
    size = torch.tensor([len(data) if rank() == 0 and data else 0], dtype=torch.int64, device=dev)
    td.broadcast(size, src=0)
    n = int(size.item())
    if rank() == 0:
        buf = torch.frombuffer(bytearray(data or b""), dtype=torch.uint8).to(dev) if n else \
            torch.empty(0, dtype=torch.uint8, device=dev)
    else:
        buf = torch.empty(n, dtype=torch.uint8, device=dev)
    if n:
        td.broadcast(buf, src=0)
    return bytes(buf.cpu().numpy().tobytes())


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``t`` along dim 0, in rank order (on every rank)."""
    if not active():
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    td.all_gather(parts, t.contiguous())
    return torch.cat(parts, 0)
