"""End the process at once, after flushing what was printed.

Used where normal interpreter teardown is slow (torch loaded, nothing left to do) or unsafe: a
process of a torch.distributed run. Tearing down its gloo process group (``destroy_process_group``,
or the interpreter's own clean-up of it) can abort the process with ``terminate called without an
active exception`` while a peer is exiting or has died, which turns a finished run or a one-line
error into SIGABRT. Such a process asks for ``end_without_teardown()`` and the CLI ends it with
``exit_now`` once its message is printed.
"""

from __future__ import annotations

import os
import sys

_without_teardown = False


def end_without_teardown() -> None:
    """Ask the CLI to end this process with ``exit_now`` instead of a normal interpreter exit."""
    global _without_teardown
    _without_teardown = True


def teardown_skipped() -> bool:
    return _without_teardown


def exit_now(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
