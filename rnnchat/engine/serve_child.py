"""The engine process of a served model (:mod:`rnnchat.engine.serve_procs` starts it): it opens the
model, says ready (or why not), then runs a :class:`~rnnchat.engine.serve_adapter.ModelWorker` on
the parent's commands (a job, a cancel, stop) and sends its events back in one batch per post.
A job's end handle (the recurrent state) crosses as NumPy arrays (:func:`to_arrays`) and comes
back as the start of a later job in any process (:func:`to_tensors`).
"""

from __future__ import annotations

import signal
import threading

from rnnchat.core.errors import RnnchatError
from rnnchat.engine.serve_adapter import Busy, Job


# ---- the handle: tensors <-> arrays ------------------------------------------------------------
def to_arrays(obj):
    """A job's end handle (tensors in tuples and lists) with every tensor as a NumPy array."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy().copy()
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_arrays(x) for x in obj)
    return obj


def to_tensors(obj):
    import numpy as np
    import torch

    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_tensors(x) for x in obj)
    return obj


# ---- the child -------------------------------------------------------------------------------
class _Emit:
    """A child's stand-in for a job's emit: its number, for the events sent to the parent."""

    def __init__(self, jid: int) -> None:
        self.jid = jid

    def __call__(self, events) -> None:  # (only reached without a post; the child always posts)
        raise RuntimeError("events of a child's job go through its post")


def child_main(name: str, weights: str, slot: int, busy, cpus: int, max_streams: int, commands, events) -> None:
    """A child's life: open the model, say ready (or why not), then serve the parent's commands
    until it says stop or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C reaches the whole group: the parent decides
    if hasattr(signal, "pthread_sigmask"):  # (blocked while this process started: serve_procs._sigint_blocked)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    lock = threading.Lock()
    jobs: dict[int, Job] = {}

    def post(take) -> None:
        out = []
        for emit, evs in take():
            job = jobs.get(emit.jid)
            fixed = []
            for ev in evs:
                if ev[0] == "done":
                    ev = ("done", to_arrays(ev[1]), job.prompt_chars if job else 0)
                    jobs.pop(emit.jid, None)
                elif ev[0] == "error":
                    jobs.pop(emit.jid, None)
                fixed.append(ev)
            out.append((emit.jid, fixed))
        with lock:
            try:
                events.send(out)
            except (OSError, ValueError):  # the parent is gone (its end of the pipe closed)
                pass

    try:
        from rnnchat.engine.runtime import open_engine
        from rnnchat.engine.serve_adapter import ModelWorker

        engine, _ = open_engine(name, "cpu", weights=weights)

        def cap() -> int:
            return max(1, cpus // max(1, sum(1 for b in busy if b > 0)))

        worker = ModelWorker(engine, max_streams=max_streams, queue=max_streams, post=post,
                             threads_cap=cap, busy=(busy, slot))
    except Exception as exc:  # (a bad model file: the parent says so and stops, or skips the model)
        from rnnchat.core.errors import first_line

        _say(events, ("failed", first_line(exc) if isinstance(exc, RnnchatError) else f"{type(exc).__name__}: {exc}"))
        return
    from rnnchat.core import heap

    if not _say(events, ("ready", engine.loaded.meta, engine.weights, heap.freeze())):
        worker.close()  # (the parent went away while this process opened the model: nothing to serve)
        return
    try:
        while True:
            try:
                cmd = commands.recv()
            except (EOFError, OSError):
                break
            if cmd[0] == "job":
                _, jid, text, params, n, start = cmd
                job = Job(text, params, n, _Emit(jid), to_tensors(start))
                jobs[jid] = job
                try:
                    worker.submit(job)
                except Busy as exc:  # (the parent keeps the bound: not reached unless it is wrong)
                    jobs.pop(jid, None)
                    refused = [(job.emit, [("error", str(exc))])]
                    post(lambda: refused)
            elif cmd[0] == "cancel":
                job = jobs.get(cmd[1])
                if job is not None:
                    job.cancel()
                    worker.wake()
            elif cmd[0] == "stop":
                worker.stop()
    finally:
        worker.close()


def _say(events, msg) -> bool:
    """Send ``msg`` to the parent; False if it has gone (killed while this process started)."""
    try:
        events.send(msg)
        return True
    except (OSError, ValueError):
        return False
