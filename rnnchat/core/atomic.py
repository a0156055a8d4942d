"""Atomic file writes: our own temp file in the same folder, flush, fsync, rename.

* The temp file is named ``.<target>.<pid>.<random>.rnnchat-tmp``; one left behind by
  a process that was killed is removed by ``clean_stale`` (called after every save and
  when a training run starts); a temp file of a process still running is left alone.
  Nothing here uses a library's writer, whose own temp names nobody would clean.
* Only a regular file is ever replaced: a target that is a FIFO, a device, a socket or a
  folder (``--out /dev/null``) is refused before anything is written, and checked again
  just before the rename.
* Every failure to write (full disk, read-only folder, missing or unusable folder) is a
  ``WriteError``: one line, an ``RnnchatError`` for the CLI and an ``OSError`` for callers
  that catch those; the target is left as it was.
* ``check_output_path`` says, before long work, whether a path can be written at all.
"""

from __future__ import annotations

import contextlib
import errno as errno_codes
import os
import re
import shutil
import stat
import time
from pathlib import Path

from rnnchat.core.errors import RnnchatError, first_line
from rnnchat.core.safe_files import kind_of

TMP_SUFFIX = ".rnnchat-tmp"
_PID = re.compile(r"\.(\d+)\.[0-9a-f]{8}" + re.escape(TMP_SUFFIX) + "$")


class WriteError(RnnchatError, OSError):
    """A file could not be written; ``str()`` is one line, ``strerror``/``errno`` those of the cause."""

    def __init__(self, message: str, code: int | None = None, strerror: str | None = None) -> None:
        OSError.__init__(self, code, strerror)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or first_line(exc)


def _refuse_special(target: Path) -> None:
    try:
        st = os.stat(target)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise WriteError(f"cannot write {target}: {_why(exc)}", exc.errno, exc.strerror) from None
    if not stat.S_ISREG(st.st_mode):
        raise WriteError(f"cannot write {target}: it is {kind_of(st.st_mode)}, not a regular file; "
                         "refusing to replace it", errno_codes.EEXIST, "not a regular file")


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike):
    """Yield a temp path beside ``target``; on success fsync it and rename it over ``target``.

    On any error the temp file is removed and ``target`` is left as it was."""
    target = Path(target)
    _refuse_special(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}{TMP_SUFFIX}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     0o666)  # the umask applies: a saved model is an ordinary file
        os.close(fd)
    except OSError as exc:
        raise WriteError(f"cannot write {target}: {_why(exc)}", exc.errno, exc.strerror) from None
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        _refuse_special(target)  # it may have been swapped for a FIFO or a device meanwhile
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, RnnchatError):
            raise WriteError(f"could not write {target}: {_why(exc)}; the previous file is unchanged",
                             exc.errno, exc.strerror) from None
        raise


def write_bytes(target, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically, then remove temp files that killed writers left there."""
    with atomic_path(target) as tmp:
        Path(tmp).write_bytes(data)
    clean_stale(Path(target).parent)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process
    return True


LEGACY_TMP = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")  # safetensors' save_file, used by rnnchat before 0.2
LEGACY_AGE = 600.0  # seconds: older than any save in progress


def clean_stale(folder: str | os.PathLike) -> int:
    """Remove temp files left behind by processes killed mid-save (not those of a live process), and
    the ``.tmpXXXXXX`` files safetensors' own writer left when rnnchat still used it."""
    removed = 0
    now = time.time()
    with contextlib.suppress(OSError):
        for path in Path(folder).glob(".*"):
            if path.name.endswith(TMP_SUFFIX):
                m = _PID.search(path.name)
                if m and _alive(int(m.group(1))):
                    continue
            elif not LEGACY_TMP.match(path.name):
                continue
            with contextlib.suppress(OSError):
                st = path.lstat()
                if not stat.S_ISREG(st.st_mode):
                    continue
                if not path.name.endswith(TMP_SUFFIX) and now - st.st_mtime < LEGACY_AGE:
                    continue
                path.unlink()
                removed += 1
    return removed


def check_output_path(path: str | os.PathLike, need_bytes: int = 0) -> Path:
    """Raise WriteError (one line) unless ``path`` can be written: the target is absent or a regular
    file, its folder exists (or can be made) and takes a new file, and ``need_bytes`` are free.
    Call it before long work whose result goes to ``path``. Returns the path."""
    target = Path(path).expanduser()
    _refuse_special(target)
    folder = target.parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise WriteError(f"cannot write {target}: {existing} is not a folder", errno_codes.ENOTDIR,
                         "Not a directory")
    if existing == folder:
        try:
            probe = folder / f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}{TMP_SUFFIX}"
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(probe)
        except OSError as exc:
            raise WriteError(f"cannot write {target}: {_why(exc)}", exc.errno, exc.strerror) from None
    elif not os.access(existing, os.W_OK | os.X_OK):
        raise WriteError(f"cannot write {target}: cannot create folders in {existing}", errno_codes.EACCES,
                         "Permission denied")
    if need_bytes:
        free = shutil.disk_usage(existing).free
        if free < need_bytes:
            raise WriteError(f"cannot write {target}: {free:,} bytes free, {need_bytes:,} needed",
                             errno_codes.ENOSPC, "No space left on device")
    return target


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
