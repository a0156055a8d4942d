"""The number of threads NumPy's BLAS (OpenBLAS) uses, without an extra dependency.

A batch-1 step is a few matrix-vector products of a few MB each. Whether a second
thread helps depends on the machine and on what else runs on its cores, so the
engine times the candidates on each stream's first characters
(:mod:`rnnchat.engine.blas_choice`); :data:`DEFAULT_THREADS` is where it starts.
``RNNCHAT_BLAS_THREADS`` fixes the count.
"""

from __future__ import annotations

import ctypes

from rnnchat.core import env

DEFAULT_THREADS = 1
_PREFIXES = ("scipy_openblas_", "openblas_")
_SUFFIXES = ("64_", "")


_FOUND: dict[str, list] = {}


def _functions(kind: str):
    """(get or set) functions of every OpenBLAS loaded in this process, looked up once (the
    engine sets the count at each stream start: re-reading /proc/self/maps each time left
    ctypes objects behind)."""
    if kind not in _FOUND:
        _FOUND[kind] = _lookup(kind)
    return _FOUND[kind]


def _lookup(kind: str):
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line})
    except OSError:  # not Linux: leave BLAS alone
        return []
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                fn = getattr(lib, f"{prefix}{kind}_num_threads{suffix}", None)
                if fn is not None:
                    if kind == "get":
                        fn.restype = ctypes.c_int
                    else:
                        fn.argtypes = [ctypes.c_int]
                    found.append(fn)
                    break
            else:
                continue
            break
    return found


def blas_threads() -> int | None:
    """Threads of the (first) loaded OpenBLAS, or None when none is found."""
    import numpy  # noqa: F401  (loads the library)

    for fn in _functions("get"):
        return int(fn())
    return None


def env_threads() -> int | None:
    """``RNNCHAT_BLAS_THREADS`` as a number, None when unset; a bad value is a SettingError."""
    return env.blas_threads()


def set_blas_threads(n: int | None = None) -> int | None:
    """Set OpenBLAS threads to ``n`` (default: ``RNNCHAT_BLAS_THREADS`` or 1). Returns the new count."""
    import numpy  # noqa: F401

    if n is None:
        n = env_threads() or DEFAULT_THREADS
    n = max(1, n)
    for fn in _functions("set"):
        fn(n)
    return blas_threads()
