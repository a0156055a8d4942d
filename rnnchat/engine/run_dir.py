"""A run's folder: its file names, the lock that keeps one training per run, and what an old run left.

The lock is ``fcntl.flock`` on ``lock`` in the run folder, which also holds the holder's pid and host.
The kernel releases a flock when its process dies, however it dies, so a run killed with ``kill -9``
leaves no lock behind: the next training takes it over.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from rnnchat.core.errors import RnnchatError

FINAL_STATE = "state.safetensors"
PREVIOUS_STATE = "state.prev.safetensors"
BEST = "best.safetensors"
CURVE = "curve.png"
LOCK = "lock"

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None


class RunBusy(RnnchatError):
    """Another process is training this run."""


def holder(folder: Path) -> str:
    """'process 1234 on host h' from a lock file (its content is untrusted: bounded and checked)."""
    try:
        with open(Path(folder) / LOCK, "rb") as fh:
            words = fh.read(200).decode("ascii", "replace").split()
    except OSError:
        words = []
    pid = words[0] if words and words[0].isdigit() else "?"
    host = words[1] if len(words) > 1 and all(c.isalnum() or c in "-._" for c in words[1]) else "?"
    return f"process {pid} on host {host}"


class RunLock:
    """Held for as long as a training runs in ``folder`` (rank 0 only under torchrun)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise RunBusy(f"{self.folder} is being trained by {holder(self.folder)}: wait for it to "
                                  "end, or stop it (Ctrl+C or kill PID saves its state)") from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def busy(folder: Path) -> str | None:
    """Who holds the lock of ``folder`` (None when nobody does); creates nothing."""
    path = Path(folder) / LOCK
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return holder(folder)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def old_run_files(folder: Path) -> list[Path]:
    """The files a previous run left in ``folder`` (what ``--overwrite`` replaces)."""
    from rnnchat.training.run_metrics import METRICS, SAMPLES

    names = (FINAL_STATE, PREVIOUS_STATE, BEST, METRICS, SAMPLES, CURVE)
    return [Path(folder) / n for n in names if (Path(folder) / n).exists()]


def remove_files(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
