"""Training runs on disk: list them, read their metrics and samples, remove them (torch-free).

A run folder (``<data dir>/runs/NAME``) holds the trainer's files: ``state.safetensors`` (resume
state; its JSON header says the step, the elapsed time, the best validation loss, the plan),
``metrics.jsonl`` and ``samples.jsonl`` (read and checked by :mod:`rnnchat.training.run_metrics`) and ``lock``
(an ``fcntl.flock`` held by the training process).

Every file here is untrusted: only regular files are read (``safe_files``: no FIFOs or devices), sizes
are bounded before anything is read, and every value is type- and range-checked; a bad line is skipped and
counted, never trusted. Text meant for a terminal goes through :func:`escape`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path

from rnnchat.core import paths
from rnnchat.core.errors import RnnchatError
from rnnchat.plugins.specs import NAME_RE
from rnnchat.training.run_metrics import read_points
from rnnchat.core.safe_files import open_regular
from rnnchat.core.safe_text import printable

STATE = "state.safetensors"
LOCK = "lock"
MAX_HEADER = 16 * 1024 * 1024    # a state header is a few KB
MAX_TAIL = 1024 * 1024          # the last 1 MB of a log file is read, no more
MAX_RUNS = 10_000
MAX_LOSS = 1e6


class RunError(RnnchatError):
    """A run that does not exist, cannot be read, or cannot be removed."""


@dataclass
class RunInfo:
    name: str
    folder: str
    state: str                       # running | finished | stopped | failed
    steps: int | None = None
    best_val: float | None = None
    elapsed: float | None = None     # seconds of training
    model: str | None = None         # where the best model goes
    holder: str | None = None        # the lock file's text (the trainer writes its pid there)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


# ---- reading untrusted files -------------------------------------------------------

def read_tail(path: Path, limit: int = MAX_TAIL) -> bytes:
    """The last ``limit`` bytes of a regular file (b"" when it is missing or not a regular file)."""
    try:
        with open_regular(path, "log") as (fh, size):
            if size > limit:
                fh.seek(size - limit)
                data = fh.read(limit)
                return data[data.find(b"\n") + 1:]  # drop the cut first line
            return fh.read(limit)
    except OSError:
        return b""


def _num(value, low: float, high: float, integer: bool = False):
    """``value`` if it is a number in [low, high] (an int when ``integer``), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if integer and not isinstance(value, int):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if low <= value <= high else None


def escape(text: str) -> str:
    """Text safe for a terminal (``safe_text.printable``, line by line): newlines kept, every other
    control, escape or bidi character shown escaped."""
    return "\n".join(printable(line) for line in text.split("\n"))


def state_header(path: Path) -> dict | None:
    """The JSON metadata of a resume state, from its header alone (None if missing or unreadable)."""
    try:
        with open_regular(path, "training state") as (fh, size):
            head = fh.read(8)
            if len(head) < 8:
                return None
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or n > size - 8:
                return None
            header = json.loads(fh.read(n))
            meta = json.loads(header["__metadata__"]["rnnchat_state"])
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    return meta if isinstance(meta, dict) else None


# ---- locks -------------------------------------------------------------------------

def lock_holder(folder: Path) -> str | None:
    """None if no process holds the run's lock; else the lock file's text (escaped, short) or '?'."""
    try:
        with open_regular(folder / LOCK, "lock") as (fh, _):
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = fh.read(200).decode("utf-8", "replace").strip()
                return printable(text.splitlines()[0], 80) if text else "?"
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return None
    except OSError:
        return None


# ---- runs --------------------------------------------------------------------------

def run_info(folder: Path) -> RunInfo:
    info = RunInfo(name=folder.name, folder=str(folder), state="failed")
    meta = state_header(folder / STATE)
    points = read_points(folder)
    if meta is not None:
        prog = meta.get("progress") if isinstance(meta.get("progress"), dict) else {}
        cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
        info.steps = _num(prog.get("step"), 0, 10**12, integer=True)
        info.best_val = _num(prog.get("best_val"), 0.0, MAX_LOSS)
        info.elapsed = _num(prog.get("elapsed"), 0.0, 1e9)
        out = meta.get("out")
        info.model = printable(out, 4096) if isinstance(out, str) else None
        info.state = "stopped" if _unfinished(cfg, info) else "finished"
    elif (folder / STATE).exists() or (folder / STATE).is_symlink():
        info.problems.append(f"{STATE} is unreadable")
    if points and (info.steps is None or points[-1]["step"] > info.steps):
        info.steps = points[-1]["step"]
        info.elapsed = points[-1]["time"]
        vals = [p["val_loss"] for p in points if p["val_loss"] is not None]
        info.best_val = min(vals) if vals else info.best_val
    holder = lock_holder(folder)
    if holder is not None:
        info.state, info.holder = "running", holder
    return info


def _unfinished(cfg: dict, info: RunInfo) -> bool:
    steps = _num(cfg.get("steps"), 1, 10**12, integer=True)
    budget = _num(cfg.get("budget"), 0.0, 1e9)
    if steps is not None:
        return (info.steps or 0) < steps
    if budget is not None:
        return (info.elapsed or 0.0) < budget
    return False


def list_runs(root: Path | None = None) -> list[RunInfo]:
    root = Path(root or paths.runs_dir())
    if not root.is_dir():
        return []
    folders = []
    with os.scandir(root) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                folders.append(Path(entry.path))
                if len(folders) >= MAX_RUNS:
                    break
    return [run_info(f) for f in sorted(folders)]


def run_folder(name: str, root: Path | None = None) -> Path:
    """The folder of the run ``name`` (a plain name, a real folder under the runs folder)."""
    root = Path(root or paths.runs_dir())
    if not NAME_RE.match(name or ""):
        raise RunError(f"{printable(repr(name), 100)} is not a run name (see `rnnchat runs`)")
    folder = root / name
    if folder.is_symlink() or not folder.is_dir():
        raise RunError(f"no run named {name!r} in {root} (see `rnnchat runs`)")
    return folder


def remove_run(name: str, root: Path | None = None) -> Path:
    """Delete a run's folder, holding its lock meanwhile; a running run (lock held) is refused."""
    folder = run_folder(name, root)
    with contextlib.ExitStack() as stack:
        try:
            fh, _ = stack.enter_context(open_regular(folder / LOCK, "lock"))
        except FileNotFoundError:
            fh = None
        except OSError as exc:
            raise RunError(f"cannot check whether run {name!r} is running: {exc}") from None
        if fh is not None:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunError(f"run {name!r} is running (process {lock_holder(folder) or '?'}): stop it first "
                               "(Ctrl+C or SIGTERM saves it), then remove it") from None
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            raise RunError(f"could not remove {folder}: {exc.strerror or exc}") from None
    return folder
