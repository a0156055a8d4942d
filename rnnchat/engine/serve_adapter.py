"""The engine side of ``rnnchat serve``: one scheduler thread per model over batched streams.

:class:`ModelWorker` owns a model's :class:`~rnnchat.engine.generate.Engine` and the one
thread that calls torch for it. Requests (:class:`Job`) arrive from the HTTP server's event
loop; the thread reads each new prompt, adds the job's streams to one
:class:`~rnnchat.engine.multi.BatchedStreams`, and advances every active stream of the model
with one batched step (one matrix-matrix product per layer) per character. The characters each
step released go back to the event loop in one call. A cancelled job (a client that went
away) leaves the batch before the next step.

A job's end carries an opaque ``(logits, state)`` handle: a later job may start from it (the
server's ``session`` extension) instead of re-reading the conversation. The server package
sees only this module's plain-Python surface (:class:`Job`, :class:`Busy`, events), never torch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from rnnchat.engine.serve_threads import StepThreads
from rnnchat.engine.sampling import Sampler
from rnnchat.core.errors import RnnchatError, first_line
from rnnchat.core.params import SamplingParams


POST_EVERY_S = 0.05  # the event loop is woken at most this often while streams run (first and last events at once)


class Busy(RnnchatError):
    """The model's batch and queue are full."""


@dataclass
class Job:
    """One request: ``text`` read after ``start`` (a handle from an earlier job, or None for
    the model's initial state), then ``n`` streams sampled with ``params``.

    ``emit(events)`` gets a list of ``(index, text)`` pieces, ``("end", index, reason)`` and
    finally ``("done", handle)`` or ``("error", message)``: from the engine thread, or, when
    the worker has a ``post``, through it (the server's event loop)."""

    text: str
    params: SamplingParams
    n: int
    emit: Callable[[list], None]
    start: object = None
    cancelled: bool = False
    sids: list = field(default_factory=list)
    prompt_chars: int = 0
    sent: bool = False  # its first events went out (later ones may wait for the next post)
    held: list | None = None  # text written since the last post: a list of pieces per stream

    def cancel(self) -> None:
        self.cancelled = True


class ModelWorker:
    """A model's engine thread. ``max_streams``: streams stepped together at most;
    ``queue``: streams that may wait for a place; past both, :meth:`submit` raises :class:`Busy`.
    ``post(take)``, when set, is called with a function that returns (and clears) the
    ``[(emit, events), ...]`` gathered so far; it is called again only after the previous
    ``take`` ran and at most every :data:`POST_EVERY_S` while streams run (a job's first and
    last events go at once), so the server's event loop wakes at most once per batch it can
    handle, not once per character (waking it took a third of a lone stream's time)."""

    def __init__(self, engine, max_streams: int = 32, queue: int = 64, post=None, threads_cap=None,
                 busy=None) -> None:
        """``threads_cap()``, when given, is the most threads the kernels may use now (read before each
        step); ``busy`` = (array, slot): this worker writes its number of active streams to
        ``array[slot]`` (:mod:`rnnchat.engine.serve_procs`: the model's processes share the cores)."""
        self.engine, self.post = engine, post
        self.busy = busy
        self.weights = engine.weights
        self._out: list = []
        self._out_lock = threading.Lock()
        self._posted = False  # a take() is on its way to the event loop
        self._urgent = False  # gathered events that should not wait (a first character, an end)
        self._last_post = 0.0
        self._holding: list[Job] = []  # jobs with held text (engine thread only)
        self.max_streams, self.queue_limit = max_streams, queue
        self.meta = engine.loaded.meta
        from rnnchat.engine.multi import BatchedStreams  # (torch: the engine's process only)

        self.streams = BatchedStreams(engine)
        self.waiting: deque[Job] = deque()
        self.running: list[Job] = []
        self.cond = threading.Condition()
        self.stopping = False
        self._submitted = 0   # jobs submitted so far
        self._woken = False   # wake() or stop() since the engine thread last looked
        self.threads = StepThreads(threads_cap)  # the kernels' thread count, timed per regime
        self.thread = threading.Thread(target=self._loop, name="rnnchat-serve-engine", daemon=True)
        self.thread.start()

    @property
    def active_streams(self) -> int:
        return sum(j.n for j in self.running)

    def submit(self, job: Job) -> None:
        with self.cond:
            waiting = sum(j.n for j in self.waiting)
            if self.stopping or self.active_streams + waiting + job.n > self.max_streams + self.queue_limit:
                raise Busy("the model's streams and queue are full; try again shortly")
            self.waiting.append(job)
            self._submitted += 1
            self.cond.notify()

    def wake(self) -> None:
        """Call after cancelling a job so that the thread notices."""
        with self.cond:
            self._woken = True
            self.cond.notify()

    def close(self) -> None:
        self.stop()
        self.thread.join(timeout=5)

    def stop(self) -> None:
        """Refuse new jobs and end every job (its client gets what was written): does not block."""
        with self.cond:
            self.stopping = True
            self._woken = True
            for job in self.waiting:
                job.cancel()
            for job in self.running:
                job.cancel()
            self.cond.notify()

    # ---- the engine thread -----------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self.cond:
                while not self.stopping and not self.running and not self.waiting:
                    self.cond.wait()
                if self.stopping and not self.running and not self.waiting:
                    return
                self._woken = False
                seen = self._submitted  # (read with the jobs taken: one submitted from here on ends the steps)
                starting = []
                while self.waiting and (self.waiting[0].cancelled  # ends at once in _start
                                        or self.active_streams + self.waiting[0].n <= self.max_streams):
                    job = self.waiting.popleft()
                    self.running.append(job)
                    starting.append(job)
            try:
                for job in starting:
                    self._start(job)
                self._drop_cancelled()
                self._publish_busy()
                if self.streams.rows:
                    self._steps(seen)
            except Exception as exc:  # a bug must end the requests with a message, not hang them
                self._fail_all(f"internal error: {first_line(exc)}")
            self._publish_busy()
            self._flush()

    def _steps(self, seen: int) -> None:
        """Step while the batch stays as it is: until a stream ends, a job is submitted (after
        ``seen`` jobs, the count when the loop last took its waiting jobs: one submitted while the
        loop was starting others must not wait for the batch to change), a job is cancelled
        (wake) or the worker stops; then the loop looks at its jobs again."""
        rows = self.streams.rows
        n = len(rows)
        self.threads.reread_cap()
        while True:
            self._step()
            if len(rows) != n or self._submitted != seen or self._woken or self.stopping:
                return
            if self._urgent or time.monotonic() - self._last_post >= POST_EVERY_S:  # (_flush's test, first)
                self._flush()

    def _publish_busy(self) -> None:
        if self.busy is not None:
            array, slot = self.busy
            if array[slot] != len(self.streams.rows):
                array[slot] = len(self.streams.rows)

    def _emit(self, job: Job, events: list) -> None:
        self._emit_many([(job, events)])

    def _emit_many(self, pending: list) -> None:
        """``[(job, events), ...]``: to each job at once, or gathered for the next post."""
        if self.post is None:
            for job, events in pending:
                job.emit(events)
            return
        urgent = False
        for job, events in pending:
            if not job.sent or events[-1][0] in ("done", "error"):
                urgent = True
            job.sent = True
        with self._out_lock:
            self._out.extend((job.emit, events) for job, events in pending)
            self._urgent = self._urgent or urgent

    def take(self) -> list:
        """The events gathered since the last take (the event loop calls it; any thread)."""
        with self._out_lock:
            out, self._out, self._posted = self._out, [], False
        return out

    def _hold(self, job: Job, pieces) -> None:
        """Keep a step's text for the next post (one event per stream per post, not per step)."""
        if job.held is None:
            job.held = [[] for _ in range(job.n)]
            self._holding.append(job)
        for i, text in pieces:
            job.held[i].append(text)
        if not job.sent:  # a job's first characters go at once
            self._urgent = True

    @staticmethod
    def _drain(job: Job) -> list:
        """The job's held text as events (and none held any more)."""
        held, job.held = job.held, None
        return [] if held is None else [(i, "".join(p)) for i, p in enumerate(held) if p]

    def _flush(self) -> None:
        if self.post is None or not (self._holding or self._out):  # (_out is only filled on this thread)
            return
        now = time.monotonic()
        if not (self._urgent or not self.streams.rows or now - self._last_post >= POST_EVERY_S):
            return  # (_urgent and _last_post are only set on this thread)
        with self._out_lock:
            if self._posted:
                return
            for job in self._holding:
                events = self._drain(job)
                if events:
                    self._out.append((job.emit, events))
                    job.sent = True
            self._holding = []
            if not self._out:
                return
            self._posted, self._urgent, self._last_post = True, False, now
        self.post(self.take)

    def _fail_all(self, message: str) -> None:
        for job in list(self.running):
            for sid in job.sids:
                if sid in self.streams.streams:
                    self.streams.remove(sid)
            job.sids = []
            with self.cond:
                self.running.remove(job)
            self._emit(job, self._drain(job) + [("error", message)])

    def _start(self, job: Job) -> None:
        if job.cancelled:
            self._finish(job, [])
            return
        try:
            engine = self.engine
            if job.start is not None:
                logits, state = job.start
            else:
                logits, state = None, engine.initial_state()
            from rnnchat.engine.generate import SHORT_PROMPT  # (torch: the engine's process only)
            from rnnchat.engine.multi import stream_seeds

            ids = engine.encode(job.text).ids if job.text else []
            read = ids if ids or logits is not None else [engine.default_start()]
            # a short prompt is read inside the batch, one id per step, while the other streams go on
            # (the per-character path Engine.feed takes for it anyway, without stopping them); a long
            # one by Engine.feed's fused call
            inline = read if 0 < len(read) < SHORT_PROMPT.get(engine.weights, 0) else ()
            if read and not inline:
                logits, state = engine.feed(read, state)
            job.prompt_chars = len(ids)

            for seed in stream_seeds(job.params, job.n):
                # (the presence and frequency penalties are in params; never the rare-character token)
                sampler = Sampler(job.params, seed, banned=engine.vocab.unk)
                sampler.remember(ids[-64:])
                job.sids.append(self.streams.add(logits, state, job.params, sampler, prompt=inline))
        except RnnchatError as exc:
            self._fail(job, first_line(exc))

    def _fail(self, job: Job, message: str) -> None:
        for sid in job.sids:
            self.streams.remove(sid)
        job.sids = []
        with self.cond:
            self.running.remove(job)
        self._emit(job, self._drain(job) + [("error", message)])

    def _drop_cancelled(self) -> None:
        for job in [j for j in self.running if j.cancelled]:
            for sid in job.sids:
                self.streams.cancel(sid)
            self._finish(job, [])

    def _step(self) -> None:
        try:
            out = self.threads.step(len(self.streams.rows), self.streams.step)
        except RnnchatError as exc:  # e.g. NaN logits: every job of this batch ends with the message
            for job in list(self.running):
                if job.sids:
                    self._fail(job, first_line(exc))
            return
        streams, pending, hold = self.streams.streams, [], self.post is not None
        for job in list(self.running):
            sids = job.sids
            if len(sids) == 1 and hold and job.held is not None and streams[sids[0]].final is None:
                text = out.get(sids[0])  # (the usual request, most steps: one more piece held)
                if text:
                    job.held[0].append(text)
                continue
            if len(sids) == 1:
                text = out.get(sids[0])
                events = [(0, text)] if text else []
                ended = streams[sids[0]].final is not None
            elif sids:
                events = [(i, out[sid]) for i, sid in enumerate(sids) if out.get(sid)]
                ended = all(streams[sid].final is not None for sid in sids)
            else:
                continue
            if ended:
                self._finish(job, events)
            elif events:
                if hold:  # (a server: the text waits for the next post, _flush)
                    self._hold(job, events)
                else:
                    pending.append((job, events))
        if pending:
            self._emit_many(pending)

    def _finish(self, job: Job, pieces: list) -> None:
        """End a job: its text not yet sent (held, and ``pieces`` of its last step) in one event per
        stream, then an end per stream and done."""
        if pieces:
            if job.held is None:
                job.held = [[] for _ in range(job.n)]
            for i, text in pieces:
                job.held[i].append(text)
        events = self._drain(job)
        handle = None
        for i, sid in enumerate(job.sids):
            _text, reason, logits, state = self.streams.result(sid)
            events.append(("end", i, reason))
            if i == 0:
                handle = (logits, state)
            self.streams.remove(sid)
        job.sids = []
        with self.cond:
            if job in self.running:
                self.running.remove(job)
        events.append(("done", None if job.cancelled else handle))
        self._emit(job, events)

