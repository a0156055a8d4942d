"""End the process at once, after flushing what was printed.

Used where normal interpreter teardown is either slow (torch loaded, nothing left to do) or unsafe
(a broken torch.distributed process group: its C++ threads can abort the process at exit, which
would turn a clean one-line error into ``terminate called without an active exception`` and a
signal exit code).
"""

from __future__ import annotations

import os
import sys


def exit_now(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
