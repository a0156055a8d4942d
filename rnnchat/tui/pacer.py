"""Pacing a reply's screen updates so that drawing never slows generation."""

from __future__ import annotations

import threading
import time

FLUSH_SECONDS = 0.04  # a worker posts the characters it has every 40 ms at most: 2-3 screen updates per 100 ms
PAINT_SHARE = 0.25  # ...and less often when painting a batch takes longer: the screen gets at most ~25 %


class Pacer:
    """Paces a reply's screen updates (shared by its worker and the UI thread).

    The worker posts the next batch only when the UI has painted the previous one and at least
    ``max(FLUSH_SECONDS, cost / PAINT_SHARE)`` has passed, where ``cost`` is how long the last batch
    took from posting to painted. Drawing shares the interpreter with generation, so bounding its
    share is what keeps a fast model fast. The worker only reads it; the UI thread only calls
    :meth:`painted` (an Event and a float: safe across threads).
    """

    def __init__(self, interval: float = FLUSH_SECONDS, share: float = PAINT_SHARE) -> None:
        self.interval, self.share = interval, share
        self.cost = 0.0
        self.last = 0.0
        self._painted = threading.Event()
        self._painted.set()

    def ready(self, now: float) -> bool:
        return self._painted.is_set() and now - self.last >= max(self.interval, self.cost / self.share)

    def sent(self, now: float) -> None:
        self.last = now
        self._painted.clear()

    def painted(self, posted_at: float) -> None:
        self.cost = max(0.0, time.monotonic() - posted_at)
        self._painted.set()
