"""A served model's engine in child processes (rnnchat.engine.serve_procs.ProcessWorker) over the
tiny model: the same text as the engine thread in process, session handles across processes,
the bound on streams and the queue, cancels, a child that dies, a model that cannot be opened,
and the kernels' thread cap the children share."""

from __future__ import annotations

import multiprocessing
import os
import threading
from contextlib import contextmanager

import numpy as np
import pytest

from rnnchat.core.errors import RnnchatError
from rnnchat.core.params import SamplingParams
from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.generate import Engine
from rnnchat.engine.serve_adapter import Busy, Job, ModelWorker
from rnnchat.engine.serve_procs import ProcessWorker
from tests.serve.conftest import save_tiny


@contextmanager
def home_env(home):
    """RNNCHAT_HOME for the children spawned inside (they take the environment at their start)."""
    old = {k: os.environ.get(k) for k in ("RNNCHAT_HOME", "RNNCHAT_DEVICE")}
    os.environ.update(RNNCHAT_HOME=str(home), RNNCHAT_DEVICE="cpu")
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("procs-home")
    save_tiny(home / "data" / "models" / "tiny.safetensors")
    return home


@pytest.fixture(scope="module")
def procs(home):
    """Two engine processes, 2 streams at once, 1 waiting."""
    with home_env(home):
        worker = ProcessWorker("tiny", processes=2, max_streams=2, queue=1)
    yield worker
    worker.close()


@pytest.fixture(scope="module")
def engine(home):
    return Engine(load_checkpoint(home / "data" / "models" / "tiny.safetensors"), "cpu")


class Run:
    """A job's events as they arrive (from the worker's reader thread)."""

    def __init__(self, text="ab", n=1, chars=80, seed=3, start=None) -> None:
        self.events, self.done = [], threading.Event()
        self.job = Job(text, SamplingParams(temperature=0.9, seed=seed, max_chars=chars), n, self.emit, start)

    def emit(self, events) -> None:
        self.events += events
        if any(ev[0] in ("done", "error") for ev in events):
            self.done.set()

    def wait(self):
        assert self.done.wait(60)
        return self

    @property
    def texts(self) -> list[str]:
        out = [""] * self.job.n
        for ev in self.events:
            if isinstance(ev[0], int):
                out[ev[0]] += ev[1]
        return out

    @property
    def last(self):
        return self.events[-1]


def in_process(engine, **kw) -> Run:
    worker = ModelWorker(engine)
    try:
        run = Run(**kw)
        worker.submit(run.job)
        return run.wait()
    finally:
        worker.close()


def test_a_child_writes_what_the_engine_thread_writes_in_process(procs, engine):
    assert procs.meta["chat"]["stop"] == ["\n\n"] and procs.weights == "fp32"
    run = Run(n=2, chars=60)
    procs.submit(run.job)
    run.wait()
    here = in_process(engine, n=2, chars=60)
    assert run.texts == here.texts and all(len(t) == 60 for t in run.texts)
    assert [ev[0] for ev in run.events[-3:]] == ["end", "end", "done"]
    assert run.job.prompt_chars == here.job.prompt_chars > 0  # (the usage figures come from the child)
    handle = run.last[1]  # the state crosses as arrays: the parent holds no tensors
    flat = [handle[0]] + [a for layer in handle[1] for a in (layer if isinstance(layer, tuple) else (layer,))]
    assert all(type(a) is np.ndarray for a in flat)


def test_each_child_leaves_what_it_keeps_out_of_later_collections(procs):
    # (core/heap.py: a full collection over torch and the model stalled a child's streams ~80 ms)
    assert len(procs.frozen) == 2 and all(n > 10_000 for n in procs.frozen)


def test_a_session_handle_continues_in_any_child(procs, engine):
    first = Run(chars=30)
    procs.submit(first.job)
    handle = first.wait().last[1]
    nexts = [Run(text="ME:", chars=40, seed=5, start=handle) for _ in range(2)]
    for r in nexts:  # two at once: they go to different children
        procs.submit(r.job)
    assert nexts[0].wait().texts == nexts[1].wait().texts

    here_first = in_process(engine, chars=30)  # the same two requests on the in-process thread
    here = in_process(engine, text="ME:", chars=40, seed=5, start=here_first.last[1])
    assert nexts[0].texts == here.texts and first.texts == here_first.texts


def test_streams_past_the_limit_wait_then_past_the_queue_are_refused(procs):
    long = [Run(chars=1_000_000, seed=s) for s in (1, 2)]
    for r in long:
        procs.submit(r.job)
    waiting = Run(chars=10)
    procs.submit(waiting.job)  # the queue's one place
    with pytest.raises(Busy):
        procs.submit(Run(chars=10).job)
    assert not waiting.done.wait(0.3) and procs.active_streams == 2
    long[0].job.cancel()
    procs.wake()
    assert long[0].wait().last[0] == "done" and len(long[0].texts[0]) < 1_000_000
    assert len(waiting.wait().texts[0]) == 10  # it started once a place was free
    long.append(Run(chars=1_000_000, seed=4))
    procs.submit(long[-1].job)  # both places taken again
    queued = Run(chars=10)
    procs.submit(queued.job)
    queued.job.cancel()  # cancelled while it waits: it ends without starting
    procs.wake()
    assert queued.wait().events == [("done", None)]
    for r in long[1:]:
        r.job.cancel()
    procs.wake()
    assert all(r.wait().last[0] == "done" for r in long)
    assert procs.active_streams == 0


def test_a_child_that_dies_ends_its_jobs_with_an_error_and_the_other_goes_on(home):
    with home_env(home):
        worker = ProcessWorker("tiny", processes=2, max_streams=4, queue=0)
    try:
        runs = [Run(chars=1_000_000, seed=s) for s in (1, 2)]
        for r in runs:
            worker.submit(r.job)
        victim = worker.jobs[0][1]
        victim.proc.kill()
        assert runs[0].wait().last == ("error", "internal error: the engine process ended")
        assert worker._busy[victim.slot] == 0  # its streams no longer count against the others' threads
        after = Run(chars=20)
        worker.submit(after.job)
        assert len(after.wait().texts[0]) == 20 and list(worker.jobs) == [1]  # on the other child
        runs[1].job.cancel()
        worker.wake()
        assert runs[1].wait().last[0] == "done"
    finally:
        worker.close()
    assert all(not c.proc.is_alive() for c in worker.children)


def test_a_child_whose_events_cannot_be_handled_is_killed_and_the_reader_goes_on(home):
    with home_env(home):
        worker = ProcessWorker("tiny", processes=2, max_streams=4, queue=0)
    try:
        deliver, broken = worker._deliver, []

        def deliver_once_broken(child, batch):  # (what a malformed batch from a child does)
            if not broken:
                broken.append(child)
                raise ValueError("not a job number and its events")
            deliver(child, batch)

        worker._deliver = deliver_once_broken
        first = Run(chars=1_000_000, seed=1)
        worker.submit(first.job)
        assert first.wait().last == ("error", "internal error: the engine process ended")
        broken[0].proc.join(10)
        assert not broken[0].proc.is_alive()  # killed: it was in no state to serve
        after = Run(chars=20)
        worker.submit(after.job)  # the reader thread still reads the other child
        assert len(after.wait().texts[0]) == 20
    finally:
        worker.close()


def test_a_model_the_children_cannot_open_is_one_error_and_no_process_left(home):
    before = set(multiprocessing.active_children())
    with home_env(home), pytest.raises(RnnchatError, match="nothere"):
        ProcessWorker("nothere", processes=2)
    assert set(multiprocessing.active_children()) <= before
    for bad in (0, 65, True, 2.0, "2"):
        with pytest.raises(RnnchatError, match="engine processes"):
            ProcessWorker("tiny", processes=bad)


def test_a_capped_worker_times_only_the_counts_under_its_cap_and_says_how_busy_it_is(engine):
    busy = multiprocessing.get_context("spawn").Array("i", 2, lock=False)
    seen = []

    def cap():
        seen.append(busy[1])
        return 1

    worker = ModelWorker(engine, threads_cap=cap, busy=(busy, 1))
    try:
        run = Run(n=2, chars=40)
        worker.submit(run.job)
        run.wait()
    finally:
        worker.close()
    assert busy[1] == 0 and 2 in seen  # idle once the job ended; 2 while its two streams ran
    assert list(worker.threads.choices) == [(False, 1)] and worker.threads.choices[(False, 1)].options == [1]
    assert run.texts == in_process(engine, n=2, chars=40).texts


def test_the_backend_serves_in_process_or_in_engine_processes_and_skips_what_it_cannot_open(rnnchat_home):
    from rnnchat.engine.serve_backend import Backend
    from rnnchat.plugins import manager

    save_tiny(rnnchat_home / "data" / "models" / "tiny.safetensors")
    manager._HOST = None  # (built while saving, to find the LSTM cell: before the file was there)
    here = Backend(["tiny", "nothere"], 2, 0, skip_unusable=True, processes=0)
    try:
        assert type(here.workers["tiny"]) is ModelWorker and [n for n, _ in here.skipped] == ["nothere"]
    finally:
        here.close()
    with pytest.raises(RnnchatError, match="cannot serve 'nothere'"):
        Backend(["nothere"], 2, 0, processes=0)
    apart = Backend(["tiny"], 2, 0, processes=1)
    try:
        worker = apart.workers["tiny"]
        assert type(worker) is ProcessWorker and worker.weights == "fp32" and apart.meta("tiny") == here.meta("tiny")
        run = Run(chars=20)
        worker.submit(run.job)
        assert len(run.wait().texts[0]) == 20
    finally:
        apart.close()
