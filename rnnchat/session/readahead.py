"""Read-ahead: the model reads the user's draft while it is being typed or pasted. Torch-free.

A recurrent model can read a prompt before the user presses Enter: every character
only moves the state forward. :class:`ReadAhead` keeps one background thread that
feeds the newest draft (framed as it will be sent: the template's text before
``{text}``, then the draft) from the state the turn will start from. When the turn
is sent, :meth:`take` hands over the state after the longest read prefix of what
is sent, and only the rest (usually the template's closing characters) is fed
before the first character comes out.

Edits are cheap: the thread keeps the state at the end of each draft it read
(:data:`MAX_MARKS` of them, thinned evenly), so a backspace resumes from the
state before it instead of rereading the whole draft.

A long paste is read :data:`READ_CHUNK` characters per ``feed``, with a mark after each:
memory stays that of one chunk (a 5 MB paste once asked for 83 GB in one forward), and
a newer draft, ``take`` or ``clear`` waits for one chunk at most, never for the whole
paste; what was read so far is kept.

The reads run on the session's engine thread (``executor``, one thread that does
all of a session's torch work): PyTorch's OpenMP pool is per thread, and two
threads that each run parallel torch code keep two pools busy on the same cores;
measured here that made a 2,000-character forward 3x slower in both. A request
carries the engine's ``encode`` and ``feed``; :meth:`take` waits for a read in
progress to end before the reply uses the engine, and a session that is busy or
reloads clears the read-ahead first.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable

MAX_MARKS = 32
READ_CHUNK = 4096  # characters per feed: what a take, a clear or a newer draft waits for at most


@dataclass
class _Mark:
    n: int  # ids read from the base
    state: Any
    logits: Any


@dataclass
class _Request:
    base: Any  # the Snapshot the turn will start from (compared by identity)
    text: str  # the framed head: everything of the turn up to the end of the draft
    encode: Callable[[str], list[int]]
    feed: Callable[[list[int], Any], tuple[Any, Any]]


@dataclass
class _Read:
    base: Any = None
    ids: list[int] = field(default_factory=list)
    marks: list[_Mark] = field(default_factory=list)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class ReadAhead:
    """A background reader of drafts on ``executor``. ``request`` never blocks; ``take`` waits
    for the reader to be idle. ``reads`` counts the feeds it made (for tests and the benchmark)."""

    def __init__(self, executor: Executor, on_executor: Callable[[], bool] = lambda: False) -> None:
        self._executor = executor
        self._on_executor = on_executor  # True when called on the executor's own thread
        self._cond = threading.Condition()
        self._want: _Request | None = None
        self._busy = False  # a read is queued or in progress on the executor
        self._read = _Read()
        self._generation = 0  # bumped by clear(): a feed that started before it is thrown away
        self._taking = 0  # take() calls waiting: the reader stops at its next chunk boundary
        self.reads = 0
        self.error: BaseException | None = None

    # ---- the caller's side ------------------------------------------------------------
    def request(self, base, text: str, encode, feed) -> None:
        """Read ``text`` (the framed head of the turn) from ``base`` in the background."""
        with self._cond:
            self._want = _Request(base, text, encode, feed)
            if not self._busy:
                self._executor.submit(self._drain)  # raises if the executor was shut down
                self._busy = True

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every request so far has been read. True when idle."""
        with self._cond:
            return self._cond.wait_for(lambda: self._want is None and not self._busy, timeout)

    def take(self, base, ids: list[int]) -> tuple[int, Any, Any]:
        """Stop reading ahead and return ``(n, state, logits)``: the state after the first ``n``
        of ``ids`` read from ``base`` (n == 0: nothing usable). The read-ahead is empty after."""
        with self._cond:
            self._want = None  # what was asked but not started is not needed any more
            if not self._on_executor():  # (on it, no read can be running: one may be queued, as a no-op now)
                self._taking += 1
                try:
                    self._cond.wait_for(lambda: not self._busy)
                finally:
                    self._taking -= 1
            read, self._read = self._read, _Read()
        if read.base is not base or not read.marks:
            return 0, None, None
        n = common_prefix(read.ids, ids)
        mark = max((m for m in read.marks if m.n <= n), key=lambda m: m.n)
        return mark.n, mark.state, mark.logits

    def clear(self) -> None:
        """Forget drafts and their states (the conversation moved, or the model changed)."""
        with self._cond:
            self._want = None
            self._read = _Read()
            self._generation += 1

    # ---- on the engine thread ---------------------------------------------------------
    def _drain(self) -> None:
        """Read the newest request until none is left (drafts typed meanwhile are merged)."""
        while True:
            with self._cond:
                req, self._want = self._want, None
                if req is None:
                    self._busy = False
                    self._cond.notify_all()
                    return
                read, generation = self._read, self._generation
            try:
                read = self._advance(read, req, generation)
            except BaseException as exc:  # the send feeds everything itself and reports the error
                self.error, read = exc, _Read()
            with self._cond:
                if generation == self._generation:
                    self._read = read

    def _wanted_elsewhere(self, generation: int) -> bool:
        """A take or clear is waiting, or a newer draft came: stop at this chunk boundary."""
        with self._cond:
            return bool(self._taking) or self._want is not None or generation != self._generation

    def _advance(self, read: _Read, req: _Request, generation: int) -> _Read:
        ids = req.encode(req.text)
        if read.base is not req.base:
            read = _Read(req.base, [], [_Mark(0, req.base.state, req.base.logits)])
        n = common_prefix(read.ids, ids)
        mark = max((m for m in read.marks if m.n <= n), key=lambda m: m.n)
        marks = [m for m in read.marks if m.n <= mark.n]
        at, state = mark.n, mark.state
        while at < len(ids) and not (at > mark.n and self._wanted_elsewhere(generation)):
            end = min(at + READ_CHUNK, len(ids))
            logits, state = req.feed(ids[at:end], state)
            self.reads += 1
            at = end
            marks.append(_Mark(at, state, logits))
            if len(marks) > MAX_MARKS:  # keep the base and the newest; thin the rest evenly
                marks = marks[:1] + marks[1:-1][1::2] + marks[-1:]
        return _Read(req.base, ids, marks)  # marks say how much of ids was read


class Idle:
    """Stands in for the read-ahead before a model is loaded."""

    def clear(self) -> None:
        pass

    def wait_idle(self, timeout=None) -> bool:
        return True
