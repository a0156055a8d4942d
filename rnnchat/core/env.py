"""Every ``RNNCHAT_*`` environment variable, read and validated here and nowhere else.

Each accessor reads ``os.environ`` when it is called (so tests can change it), checks the value's
type and range, and returns it typed; a value it cannot take is a ``SettingError``: one line that
names the variable and the values it accepts. An unset or empty variable means its default.
``docs/environment.md`` lists them all (``VARIABLES`` below; a test keeps the two in step).
Nothing here imports torch.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from rnnchat.core.errors import SettingError

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
PRECISIONS = ("auto", "fp32", "bf16")
EXIT_EVENTS = ("first-frame", "ready")
MAX_DIST_TIMEOUT = 7 * 24 * 3600.0  # a week: larger values overflow the process group's timer
# Threads: more than a few per core only adds waiting (the kernels are memory-bound), and an
# absurd count makes OpenMP create that many threads (RNNCHAT_THREADS=100000 segfaulted torch).
MAX_THREADS = min(1024, 4 * (os.cpu_count() or 1))

VARIABLES = {
    "RNNCHAT_HOME": "folder for settings, models, conversations and corpora (default: platformdirs)",
    "RNNCHAT_DEVICE": "device: auto, cpu, cuda, cuda:N or mps (default auto; --device wins)",
    "RNNCHAT_THREADS": f"torch CPU threads, 1 to 4 x cores (here {MAX_THREADS}); default min(cores, 8)",
    "RNNCHAT_BLAS_THREADS": f"NumPy/OpenBLAS threads of the fast CPU path, 1 to {MAX_THREADS}; default probed",
    "RNNCHAT_FAST": "boolean: the fast generation path (default on)",
    "RNNCHAT_PROMPT_PRECISION": "auto, fp32 or bf16: how long prompts are read (default auto)",
    "RNNCHAT_INT8_KERNEL": "auto or fbgemm: rnnchat's own int8 kernel where built (auto), or fbgemm's op",
    "RNNCHAT_DIST_TIMEOUT": "seconds, above 0 and at most a week: multi-process join timeout (default 120)",
    "RNNCHAT_LOAD_PLUGINS": "comma-separated entry-point names to load (empty: no third-party plugins)",
    "RNNCHAT_STRICT_PLUGINS": "boolean: any plugin error is fatal, for plugin developers (default off)",
    "RNNCHAT_CORPUS_MIRROR": "http(s) URL: `corpora get NAME` fetches URL/NAME.txt instead",
    "RNNCHAT_EXIT_AFTER": "first-frame or ready: the app exits at that moment (startup benchmark)",
}


def _raw(name: str) -> str | None:
    """The stripped value, or None when unset or empty."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return None
    return value.strip()


def _bad(name: str, raw: str, accepted: str) -> SettingError:
    return SettingError(f"{name} must be {accepted}, not {raw!r}")


def flag(name: str, default: bool) -> bool:
    """The one boolean rule: 1/true/yes/on or 0/false/no/off, in any case."""
    raw = _raw(name)
    if raw is None:
        return default
    if raw.lower() in TRUE:
        return True
    if raw.lower() in FALSE:
        return False
    raise _bad(name, raw, f"one of {', '.join(TRUE)} (on) or {', '.join(FALSE)} (off)")


def whole(name: str, low: int, high: int) -> int | None:
    """A whole number from ``low`` to ``high``, or None when unset."""
    raw = _raw(name)
    if raw is None:
        return None
    if not re.fullmatch(r"[+-]?[0-9]{1,12}", raw):
        raise _bad(name, raw, f"a whole number from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise _bad(name, raw, f"a whole number from {low} to {high}")
    return value


def choice(name: str, choices: tuple[str, ...]) -> str | None:
    raw = _raw(name)
    if raw is None:
        return None
    if raw.lower() not in choices:
        raise _bad(name, raw, f"{', '.join(choices[:-1])} or {choices[-1]}")
    return raw.lower()


# ---- the variables ------------------------------------------------------------------------------

def home() -> Path | None:
    raw = _raw("RNNCHAT_HOME")
    if raw is not None and "\0" in raw:
        raise _bad("RNNCHAT_HOME", raw, "a folder path")
    return Path(raw).expanduser() if raw is not None else None


def device() -> str | None:
    """The device name as given (``pick_device`` checks it against the machine)."""
    raw = _raw("RNNCHAT_DEVICE")
    if raw is not None and not re.fullmatch(r"[a-z]{2,8}(:[0-9]{1,4})?", raw.lower()):
        raise _bad("RNNCHAT_DEVICE", raw, "auto, cpu, cuda, cuda:N or mps")
    return raw.lower() if raw is not None else None


def threads() -> int | None:
    return whole("RNNCHAT_THREADS", 1, MAX_THREADS)


def blas_threads() -> int | None:
    return whole("RNNCHAT_BLAS_THREADS", 1, MAX_THREADS)


def fast() -> bool:
    return flag("RNNCHAT_FAST", True)


def prompt_precision() -> str | None:
    return choice("RNNCHAT_PROMPT_PRECISION", PRECISIONS)


def int8_kernel() -> str | None:
    return choice("RNNCHAT_INT8_KERNEL", ("auto", "fbgemm"))


def dist_timeout() -> float:
    raw = _raw("RNNCHAT_DIST_TIMEOUT")
    if raw is None:
        return 120.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_DIST_TIMEOUT:  # also refuses nan and inf
        raise _bad("RNNCHAT_DIST_TIMEOUT", raw, f"a number of seconds above 0 and at most {MAX_DIST_TIMEOUT:g}")
    return seconds


def load_plugins() -> set[str] | None:
    """The entry points to load (an empty set: none), or None when unset (all of them)."""
    value = os.environ.get("RNNCHAT_LOAD_PLUGINS")
    if value is None:
        return None
    return {n.strip() for n in value.split(",") if n.strip()}


def strict_plugins() -> bool:
    return flag("RNNCHAT_STRICT_PLUGINS", False)


def corpus_mirror() -> str | None:
    raw = _raw("RNNCHAT_CORPUS_MIRROR")
    if raw is not None and not re.match(r"^https?://[^\s/]+", raw):
        raise _bad("RNNCHAT_CORPUS_MIRROR", raw, "an http:// or https:// URL")
    return raw


def exit_after() -> str | None:
    return choice("RNNCHAT_EXIT_AFTER", EXIT_EVENTS)
