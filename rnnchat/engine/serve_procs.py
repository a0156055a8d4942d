"""A served model's engine in several processes: one :class:`ModelWorker` in each, streams shared out.

CPython runs one thread's Python at a time, and a batched step is ~20% Python (sampling, the
streams' text): two engine threads of one process, 8 streams each on one kernel thread, made
45K chars/s together, against 75K for the same two halves in two processes, and 46K for the 16
streams in one thread on both cores (benchmarks/serve_speed.py, docs/serve.md). So a server runs
each model's engine in ``processes`` child processes (spawned, each opening the model itself) and
gives each new request to the one with the fewest streams; the HTTP event loop stays alone in the
server's own process.

The kernels' thread count is shared out too: a child uses at most ``cpus // busy`` threads, where
``busy`` is how many of the model's children have streams (a lone request keeps both cores of a
two-core machine; two busy children take one each), read from an array the children share.

The parent speaks to each child over two pipes: commands (a job, a cancel, stop) and events (a
batch of ``(job number, events)`` per post of the child's worker). A job's end handle (the
recurrent state, for the server's sessions) crosses as NumPy arrays and stays that way in the
parent: it is opaque there and goes back to a child, which turns it into tensors, as the start
of a later job (the child's side: :mod:`rnnchat.engine.serve_child`). A child that dies, or sends
what cannot be read, ends its requests with an error (and is killed if still running); the others
go on.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections import deque
from multiprocessing.connection import wait

from rnnchat.core.errors import RnnchatError
from rnnchat.engine.serve_adapter import Busy, Job
from rnnchat.engine.serve_child import child_main

START_TIMEOUT_S = 300  # a child that has not opened its model by then is a failed start


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT blocked in this thread while the children start. A spawned interpreter inherits the
    signal mask, so a Ctrl+C while it imports stays pending there until :func:`child_main` ignores
    it (it printed a KeyboardInterrupt traceback from each child, measured 0.3 s into `rnnchat
    serve`); here it is delivered when the block ends (or at once to another thread), not lost."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()  # (now: starting it later unblocks SIGINT, measured: SigBlk 0 in the children)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_processes() -> int:
    """Engine processes per model when ``rnnchat serve`` is not told: one per CPU, at most 4."""
    return min(usable_cpus(), 4)


# ---- the parent ------------------------------------------------------------------------------
class _Child:
    def __init__(self, slot: int, proc, commands, events) -> None:
        self.slot, self.proc, self.commands, self.events = slot, proc, commands, events
        self.streams = 0  # streams of its jobs in flight (parent's count)
        self.alive = True


class ProcessWorker:
    """A model's engine in ``processes`` child processes, with :class:`ModelWorker`'s surface for
    the server: ``submit``, ``wake``, ``stop``, ``close``, ``meta``, ``weights`` and ``post``
    (set by the server: events reach its event loop in one call per batch)."""

    def __init__(self, name: str, weights: str = "auto", processes: int = 2, max_streams: int = 32,
                 queue: int = 64, post=None) -> None:
        """``max_streams``: streams running at once over all the processes; ``queue``: streams that
        may wait here for a place; past both, :meth:`submit` raises :class:`Busy` (as
        :class:`ModelWorker`)."""
        if isinstance(processes, bool) or not isinstance(processes, int) or not 1 <= processes <= 64:
            raise RnnchatError(f"engine processes must be a whole number in [1, 64], not {processes!r}")
        self.post = post
        self.max_streams, self.queue_limit = max_streams, queue
        self.jobs: dict[int, tuple[Job, _Child]] = {}  # running, by number
        self.waiting: deque[Job] = deque()
        self._next = 0
        self._lock = threading.Lock()
        self._out: list = []
        self._posted = False
        self._cancels_sent: set[int] = set()
        self.stopping = False
        ctx = multiprocessing.get_context("spawn")
        cpus = usable_cpus()
        self._busy = ctx.Array("i", processes, lock=False)
        self.children: list[_Child] = []
        self.frozen: list[int] = []  # objects each child left out of its collections once ready (core.heap)
        try:
            with _sigint_blocked():
                for slot in range(processes):
                    cmd_r, cmd_w = ctx.Pipe(duplex=False)
                    ev_r, ev_w = ctx.Pipe(duplex=False)
                    proc = ctx.Process(target=child_main, name=f"rnnchat-engine-{name}-{slot}", daemon=True,
                                       args=(name, weights, slot, self._busy, cpus, max_streams, cmd_r, ev_w))
                    try:
                        proc.start()
                    except OSError as exc:  # (out of processes or memory: a condition of the machine)
                        raise RnnchatError(f"could not start an engine process: {exc}") from None
                    finally:
                        cmd_r.close()
                        ev_w.close()
                    self.children.append(_Child(slot, proc, cmd_w, ev_r))
            self.meta, self.weights = self._await_ready()
        except BaseException:
            self.close()
            raise
        self.thread = threading.Thread(target=self._read, name=f"rnnchat-engine-{name}-events", daemon=True)
        self.thread.start()

    def _await_ready(self):
        ready = None
        for child in self.children:
            if not child.events.poll(START_TIMEOUT_S):
                raise RnnchatError("the engine process did not open the model in time")
            try:
                msg = child.events.recv()
            except Exception:  # (EOF: it ended; anything else: it cannot be understood)
                raise RnnchatError("the engine process ended while opening the model") from None
            if isinstance(msg, tuple) and len(msg) == 2 and msg[0] == "failed":
                raise RnnchatError(str(msg[1]))
            if not (isinstance(msg, tuple) and len(msg) == 4 and msg[0] == "ready"):
                raise RnnchatError("the engine process sent something other than ready while opening the model")
            ready = msg[1], msg[2]
            self.frozen.append(msg[3])
        return ready

    @property
    def active_streams(self) -> int:
        with self._lock:
            return self._streams()

    def submit(self, job: Job) -> None:
        with self._lock:
            if self.stopping or not any(c.alive for c in self.children):
                raise Busy("the model's engine processes have stopped; try again shortly")
            if self._streams() + sum(j.n for j in self.waiting) + job.n > self.max_streams + self.queue_limit:
                raise Busy("the model's streams and queue are full; try again shortly")
            self.waiting.append(job)
            out = self._dispatch()
        self._send(out)

    def _streams(self) -> int:
        return sum(job.n for job, _ in self.jobs.values())

    def _dispatch(self) -> list:
        """Start waiting jobs while there is room (with the lock held); returns the events of jobs
        that ended before they started (cancelled, or no process left to run them)."""
        out = []
        while self.waiting and (self.waiting[0].cancelled or self._streams() + self.waiting[0].n <= self.max_streams):
            job = self.waiting.popleft()
            live = [c for c in self.children if c.alive]
            if job.cancelled or not live:
                out.append((job.emit, [("done", None)] if job.cancelled else
                            [("error", "internal error: the engine processes have ended")]))
                continue
            child = min(live, key=lambda c: c.streams)  # (the first of the least busy)
            jid, self._next = self._next, self._next + 1
            try:
                child.commands.send(("job", jid, job.text, job.params, job.n, job.start))
            except OSError:  # (its reader thread will mark it dead and end its jobs)
                self.waiting.appendleft(job)
                child.alive = False
                continue
            self.jobs[jid] = (job, child)
            child.streams += job.n
        return out

    def wake(self) -> None:
        """Pass on the cancels of jobs whose clients went away (waiting ones end here)."""
        with self._lock:
            for jid, (job, child) in self.jobs.items():
                if job.cancelled and jid not in self._cancels_sent:
                    self._cancels_sent.add(jid)
                    try:
                        child.commands.send(("cancel", jid))
                    except OSError:
                        pass
            out = self._dispatch()
        self._send(out)

    def stop(self) -> None:
        """End every job (their clients get what was written) and refuse new ones; does not block."""
        with self._lock:
            self.stopping = True
            for job in self.waiting:
                job.cancel()
            out = self._dispatch()
            for child in self.children:
                try:
                    child.commands.send(("stop",))
                except OSError:
                    pass
        self._send(out)

    def close(self) -> None:
        """Stop, then close the command pipes: each child ends its jobs (their events still come)
        and exits; one that has not after a few seconds is killed."""
        self.stop()
        for child in self.children:
            try:
                child.commands.close()
            except OSError:
                pass
        for child in self.children:
            child.proc.join(timeout=10)
            if child.proc.is_alive():
                child.proc.kill()
                child.proc.join(timeout=5)

    # ---- events, on the reader thread ----------------------------------------------------------
    def _read(self) -> None:
        live = {c.events: c for c in self.children}
        while live:
            for conn in wait(list(live)):
                child = live[conn]
                try:
                    batch = conn.recv()
                    if not isinstance(batch, list):
                        raise TypeError(f"not a batch of events: {type(batch).__name__}")
                    self._deliver(child, batch)
                except Exception:  # (EOF: it ended; anything else: it cannot be understood any more,
                    del live[conn]  # and this thread must go on for the others)
                    self._lost(child)

    def _deliver(self, child: _Child, batch) -> None:
        out = []
        with self._lock:
            for jid, events in batch:
                entry = self.jobs.get(jid)
                if entry is None:
                    continue
                job = entry[0]
                fixed = []
                for ev in events:
                    if ev[0] == "done":
                        job.prompt_chars = ev[2]
                        ev = ("done", ev[1])
                    if ev[0] in ("done", "error"):
                        del self.jobs[jid]
                        self._cancels_sent.discard(jid)
                        child.streams -= job.n
                    fixed.append(ev)
                out.append((job.emit, fixed))
            out += self._dispatch()
        self._send(out)

    def _lost(self, child: _Child) -> None:
        """A child that ended (a crash, a kill): its jobs end with an error."""
        out = []
        if child.proc.is_alive():  # (it sent what cannot be read: in no state to serve)
            child.proc.kill()
        with self._lock:
            child.alive = False
            self._busy[child.slot] = 0  # (its last count would cap the others' threads for good)
            for jid, (job, c) in list(self.jobs.items()):
                if c is child:
                    del self.jobs[jid]
                    out.append((job.emit, [("error", "internal error: the engine process ended")]))
            child.streams = 0
            out += self._dispatch()
        self._send(out)

    def _send(self, out: list) -> None:
        if not out:
            return
        if self.post is None:
            for emit, events in out:
                emit(events)
            return
        with self._lock:
            self._out.extend(out)
            if self._posted:
                return
            self._posted = True
        self.post(self.take)

    def take(self) -> list:
        with self._lock:
            out, self._out, self._posted = self._out, [], False
        return out
