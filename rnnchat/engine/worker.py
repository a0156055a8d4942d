"""The engine worker: the one thread that runs a session's torch code.

PyTorch keeps an OpenMP pool per calling thread; two threads running parallel torch code
on the same cores made each forward 3x slower here (see ``session/readahead.py``), and a
torch step run in another thread than the prompt's forward ran at half speed. So every
engine call of a chat session runs on one thread, created with its engine: loading,
reading prompts and drafts, generating, and turning states into bytes.

``call(fn, *args)`` runs ``fn`` there and waits for it (directly when already there);
``submit(fn, *args)`` queues it and returns a Future. This is the only "run on the engine
thread" mechanism. Nothing outside ``rnnchat.engine`` hands it functions: the session and
the app ask the engine for results (``ChatEngine`` in ``engine/chat.py``).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import CancelledError, Future

from rnnchat.core.errors import RnnchatError

_STOP = object()


class EngineClosed(RnnchatError):
    """The engine was closed (its model was replaced): open the model again."""


class EngineWorker:
    """One daemon thread for one engine, running what it is given in order. Thread-safe: any
    thread may call or submit. A daemon, so that quitting never waits for a model that loads
    or a reply that is being cut short (the chat app ends the process once it has closed)."""

    def __init__(self, name: str = "rnnchat-engine") -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while (job := self._queue.get()) is not _STOP:
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for it
                future.set_exception(exc)
            else:
                future.set_result(result)
            del job, future, fn, args  # no reference to the last job's objects while idle

    def is_current(self) -> bool:
        """True when called on this worker's own thread."""
        return threading.current_thread() is self._thread

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise EngineClosed("this model was closed; open it again")
            self._queue.put((future, fn, args))
        return future

    def call(self, fn, *args):
        """``fn(*args)`` on the worker thread; waits for it and returns its result (or raises)."""
        if self.is_current():
            return fn(*args)
        try:
            return self.submit(fn, *args).result()
        except CancelledError:  # closed before it ran
            raise EngineClosed("this model was closed; open it again") from None

    def close(self) -> None:
        """Let the thread end after what it is doing; work queued after that is cancelled."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        while True:  # cancel what was queued before the stop (a waiting caller gets CancelledError)
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                self._queue.put(_STOP)
                break
            job[0].cancel()

    @property
    def thread(self) -> threading.Thread:
        return self._thread
