"""Atomic file writes: temp file in the same folder, flush, fsync, rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TMP_SUFFIX = ".rnnchat-tmp"


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike):
    """Yield a temp path beside ``target``; on success fsync it and rename it over ``target``.

    On any error the temp file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TMP_SUFFIX, dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a saved model is an ordinary file
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(target, data: bytes) -> None:
    with atomic_path(target) as tmp:
        Path(tmp).write_bytes(data)


def clean_stale(folder: str | os.PathLike) -> int:
    """Remove temp files left behind by a process killed mid-save."""
    removed = 0
    for path in Path(folder).glob(f".*{TMP_SUFFIX}"):
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
