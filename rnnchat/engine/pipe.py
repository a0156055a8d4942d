"""Generation: a reply's tokens, produced on the engine thread and read from any thread.

Torch-free (the fake engine uses it too). The producer runs on the engine's worker; it
appends each token to a deque and sets an event for the first one and at the end; the reader
pops tokens and, when there are none, waits up to :data:`POLL` seconds. So the reader wakes
at most a few hundred times a second however fast the model writes (a wake per character
cost the generator its speed in GIL hand-overs), no per-character hand-over blocks the
generator, and the reader's thread never runs engine code.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable

from rnnchat.engine.worker import EngineClosed

_END = object()
POLL = 0.004  # seconds a reader waits for more tokens before looking again


class Generation:
    """Iterate (once, from any thread) to get the tokens. ``produce(gen)`` runs on ``worker``:
    it appends tokens to ``gen.buf``, calls ``gen.ready.set()`` after the first, stops when
    ``gen.cancel`` is set, and returns ``(reason, fed, end)``: "stop", "length" or "cancelled",
    every character fed into the state (the stop sequence included), and the state after them.
    An exception in ``produce`` is raised in the reader's thread."""

    def __init__(self, worker, produce: Callable[["Generation"], tuple[str, str, Any]],
                 cancel: threading.Event) -> None:
        self.cancel = cancel
        self.reason: str | None = None
        self.fed = ""
        self.end: Any = None
        self.buf: deque = deque()
        self.ready = threading.Event()
        self._error: BaseException | None = None
        self._done = threading.Event()
        worker.submit(self._run, produce).add_done_callback(self._cancelled)

    def _cancelled(self, future) -> None:
        if future.cancelled():  # the engine was closed before the reply started
            self._error = EngineClosed("this model was closed; open it again")
            self.buf.append(_END)
            self.ready.set()
            self._done.set()

    def _run(self, produce) -> None:
        try:
            self.reason, self.fed, self.end = produce(self)
        except BaseException as exc:  # noqa: BLE001 - raised in the reader's thread
            self._error = exc
        finally:
            self.buf.append(_END)
            self.ready.set()
            self._done.set()

    def __iter__(self):
        buf, ready = self.buf, self.ready
        while True:
            try:
                item = buf.popleft()
            except IndexError:
                ready.wait(POLL)
                ready.clear()  # the producer appends before it sets: look again before waiting
                continue
            if item is _END:
                break
            yield item
        if self._error is not None:
            raise self._error

    def drain(self) -> list:
        """Wait for the producer to end (cancel it first) and return the tokens not read yet."""
        self._done.wait()
        rest = [t for t in self.buf if t is not _END]
        self.buf.clear()
        if self._error is not None:
            raise self._error
        return rest
