"""Startup measurement: ``RNNCHAT_EXIT_AFTER=first-frame|ready`` makes the app exit at that point
and print ``rnnchat-startup <event> <seconds since the process started>`` to stderr.

The process start time comes from ``/proc/self/stat`` (Linux), so the figure includes the
interpreter's own start and every import; elsewhere it falls back to the time this module
was imported.
"""

from __future__ import annotations

import os
import sys
import time

from rnnchat.core import env

EVENTS = ("first-frame", "ready")
_IMPORTED = time.time()


def _process_start() -> float:
    """Wall-clock time (``time.time()`` scale) at which this process started."""
    try:
        with open("/proc/self/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
        with open("/proc/uptime", "rb") as fh:
            uptime = float(fh.read().split()[0])
        fields = stat[stat.rindex(")") + 2:].split()
        start_ticks = int(fields[19])  # field 22 of stat(5); fields[0] is field 3
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        if 0 <= age < 3600 * 24 * 365:
            return time.time() - age
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    return _IMPORTED


PROCESS_START = _process_start()


def _textual_clock() -> float:
    """The clock Textual stamps its messages with (monotonic; perf_counter on Windows)."""
    return time.perf_counter() if sys.platform == "win32" else time.monotonic()


def exit_after() -> str | None:
    """The event named by ``RNNCHAT_EXIT_AFTER`` (None when unset; an unknown one is a SettingError)."""
    value = env.exit_after()
    return value if value in EVENTS else None


class Startup:
    """Records the moments the app reaches; prints them after the app has left the terminal."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def mark(self, event: str, since: float | None = None) -> float:
        """Record ``event`` now, or at ``since``: a Textual message's ``time`` (the moment it was
        posted, on Textual's clock), so that a busy message queue does not delay the figure."""
        seconds = time.time() - PROCESS_START
        if since is not None:
            seconds -= max(0.0, _textual_clock() - since)
        if event not in {e for e, _ in self.events}:
            self.events.append((event, seconds))
        return seconds

    def report(self, stream=None) -> None:
        if not exit_after():
            return
        stream = stream or sys.__stderr__ or sys.stderr
        if not stream.isatty():  # the app's own output went to this stream too: start a fresh line
            stream.write("\n")
        for event, seconds in self.events:
            stream.write(f"rnnchat-startup {event} {seconds:.3f}\n")
        stream.flush()
