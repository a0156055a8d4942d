"""Read files that someone else may have put there: regular files only, sizes bounded by what is read.

A FIFO blocks its reader forever, a device (``/dev/zero``) never ends, and
``st_size`` is 0 for both; a symlink can point at either. Every file rnnchat reads
as a checkpoint, corpus, state or settings goes through here: ``stat`` first and
refuse anything that is not a regular file (nothing is opened), then open with
``O_NONBLOCK`` and check again with ``fstat`` on the open descriptor (the name may
have been swapped in between), then read at most ``max_bytes`` (one byte more
means too large, whatever ``st_size`` says).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from rnnchat.core.errors import RnnchatError

_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder", stat.S_IFLNK: "a symbolic link"}


class NotRegularFile(RnnchatError, OSError):
    """The path exists but is not a regular file (a FIFO, a device, a socket, a folder)."""


class FileTooLarge(RnnchatError, OSError):
    """More bytes than the caller accepts."""


def kind_of(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def refuse_special(path, what: str = "file") -> os.stat_result | None:
    """``os.stat(path)`` (following links), or None when nothing is there; NotRegularFile when it is
    there but not a regular file. Opens nothing."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(f"{path} is {kind_of(st.st_mode)}, not a regular file; refusing to use it as a {what}")
    return st


@contextlib.contextmanager
def open_regular(path, what: str = "file"):
    """Open ``path`` for binary reading, refusing anything but a regular file; yields ``(fileobj, size)``.

    FileNotFoundError, IsADirectoryError and PermissionError pass through for the caller to word."""
    st = refuse_special(path, what)
    if st is None:
        raise FileNotFoundError(2, "No such file or directory", str(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode):
            raise NotRegularFile(f"{path} is {kind_of(fst.st_mode)}, not a regular file; refusing to use it as a {what}")
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh, fst.st_size


def read_bounded(fh, max_bytes: int, path, what: str = "file") -> bytes:
    """Read to the end of ``fh`` but never more than ``max_bytes`` (FileTooLarge past it)."""
    chunks, total = [], 0
    while True:
        block = fh.read(min(1 << 24, max_bytes + 1 - total))
        if not block:
            break
        chunks.append(block)
        total += len(block)
        if total > max_bytes:
            raise FileTooLarge(f"{path} is larger than {_size(max_bytes)}, the limit for a {what}")
    return b"".join(chunks)


def read_regular(path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` (refused early when it says it is larger)."""
    with open_regular(path, what) as (fh, size):
        if size > max_bytes:
            raise FileTooLarge(f"{path} is {_size(size)}; the limit for a {what} is {_size(max_bytes)}")
        return read_bounded(fh, max_bytes, path, what)


def is_regular(path) -> bool:
    """True when ``path`` (following links) is a regular file."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


__all__ = ["NotRegularFile", "FileTooLarge", "open_regular", "read_regular", "read_bounded", "refuse_special",
           "is_regular", "Path"]
