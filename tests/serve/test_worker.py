"""The serve engine thread (rnnchat.engine.serve_adapter.ModelWorker) over a tiny model, in process:
the event loop is woken for a job's first and last events and not once per character, and the
thread count is timed separately for a lone stream and for a batch without changing the text."""

from __future__ import annotations

import threading

import pytest

from rnnchat.engine import serve_adapter
from rnnchat.engine.checkpoint import load_checkpoint
from rnnchat.engine.generate import Engine
from rnnchat.engine.serve_adapter import Job, ModelWorker
from rnnchat.core.params import SamplingParams


@pytest.fixture
def engine(make_checkpoint):
    return Engine(load_checkpoint(make_checkpoint("lstm")), "cpu")


def run_job(worker, n=1, chars=200, seed=3):
    got, done = [], threading.Event()

    def emit(events):
        got.append(events)
        if any(ev[0] in ("done", "error") for ev in events):
            done.set()

    worker.submit(Job("ab", SamplingParams(temperature=0.9, seed=seed, max_chars=chars), n, emit))
    assert done.wait(60)
    texts = [""] * n
    for events in got:
        for ev in events:
            if isinstance(ev[0], int):
                texts[ev[0]] += ev[1]
    return got, texts


def event_loop(posts: list, tick=None):
    """A post function standing for the server's event loop: runs each take at once, keeps it in
    ``posts`` (``tick()`` first, when given: a clock that moves on at each post)."""
    def post(take):
        if tick is not None:
            tick()
        batch = take()
        posts.append(batch)
        for emit, events in batch:
            emit(events)

    return post


def test_the_event_loop_is_woken_for_first_and_last_events_not_per_character(engine, monkeypatch):
    monkeypatch.setattr(serve_adapter.time, "monotonic", lambda: 1000.0)  # the clock never moves on
    posts = []
    worker = ModelWorker(engine, post=event_loop(posts))
    try:
        _, texts = run_job(worker, chars=200)
    finally:
        worker.close()
    plain = ModelWorker(engine)  # no event loop: every step's events straight to the job
    try:
        per_step, plain_texts = run_job(plain, chars=200)
    finally:
        plain.close()
    assert texts == plain_texts and len(texts[0]) == 200
    assert len(per_step) >= 100                  # one list per step without a loop to wake
    assert len(posts) == 2                        # with one: the first characters, then the rest with the end
    assert posts[-1][-1][1][-1][0] == "done"
    # a post carries one event per job: its text joined since the last post (not one per step)
    assert all(len(batch) == 1 for batch in posts)
    assert [ev[0] for ev in posts[-1][0][1]] == [0, "end", "done"]


def test_held_text_goes_out_every_interval_and_before_an_end(engine, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(serve_adapter.time, "monotonic", lambda: clock[0])

    def tick():
        clock[0] += 1.5 * serve_adapter.POST_EVERY_S  # the next step is due for a post again

    worker = ModelWorker(engine, post=event_loop([], tick))
    try:
        got, texts = run_job(worker, n=2, chars=30)
    finally:
        worker.close()
    pieces = [ev for events in got for ev in events if isinstance(ev[0], int)]
    assert len(pieces) >= 30 and all(len(t) == 30 for t in texts)  # every step posted: nothing lost or doubled
    ends = [i for i, ev in enumerate(e for events in got for e in events) if ev[0] == "end"]
    assert len(ends) == 2 and got[-1][-1][0] == "done"


def test_the_thread_count_is_timed_apart_for_a_lone_stream_and_a_batch(engine):
    worker = ModelWorker(engine)
    try:
        _, lone = run_job(worker, n=1, chars=120)
        _, batch = run_job(worker, n=2, chars=120)
        choices = worker.threads.choices
    finally:
        worker.close()
    for lone_regime in (True, False):
        c = choices[(lone_regime, 0)]  # (no cap on the threads)
        assert c.fixed or set(c.timings) == set(c.options)  # every candidate timed, the fastest kept
    assert batch[0] == lone[0]                    # stream 0 of a batch is the seed's own text


def test_a_fixed_thread_count_serves_lone_streams_and_batches(engine, monkeypatch):
    monkeypatch.setenv("RNNCHAT_BLAS_THREADS", "1")  # no timing: the probe is the plain step itself
    worker = ModelWorker(engine)
    try:
        _, lone = run_job(worker, n=1, chars=60)
        _, batch = run_job(worker, n=3, chars=60)   # lone -> batch -> lone: the regime changes twice
        _, again = run_job(worker, n=1, chars=60)
    finally:
        worker.close()
    assert lone == again and batch[0] == lone[0] and all(len(t) == 60 for t in batch)


def test_a_short_prompt_read_in_the_batch_gives_the_single_streams_text(make_checkpoint):
    engine = Engine(load_checkpoint(make_checkpoint("lstm", hidden=128, embedding=8)), "cpu", weights="int8")
    params = SamplingParams(temperature=0.9, seed=3, max_chars=80)
    logits, state = engine.feed(engine.encode("ab").ids, engine.initial_state())  # the CLI's way
    single = "".join(t.char for t in engine.stream(logits, state, params))
    worker = ModelWorker(engine)
    try:
        _, texts = run_job(worker, chars=80)  # "ab": under SHORT_PROMPT, read one id per step
    finally:
        worker.close()
    assert texts == [single]


def test_a_job_submitted_while_others_start_joins_the_running_batch(engine):
    """A request that arrives while the engine thread is starting others (between taking its
    waiting jobs and stepping) joins the batch at the next step: it once waited until a stream of
    the batch ended (400 ms at 16 clients on the bundled model)."""
    worker = ModelWorker(engine)
    order, done = [], threading.Event()
    later = []

    def emit_for(name):
        def emit(events):
            for ev in events:
                if isinstance(ev[0], int) and ev[1]:
                    order.append((name, "text"))
                elif ev[0] in ("done", "error"):
                    order.append((name, ev[0]))
                    if name == "late":
                        done.set()
        return emit

    start = worker._start

    def start_then_submit(job):  # a submit exactly in the window (from the engine thread itself)
        start(job)
        if not later:
            later.append(Job("ab", SamplingParams(temperature=0.9, seed=5, max_chars=20), 1, emit_for("late")))
            worker.submit(later[0])

    worker._start = start_then_submit
    try:
        worker.submit(Job("ab", SamplingParams(temperature=0.9, seed=3, max_chars=3000), 1, emit_for("long")))
        assert done.wait(60)
    finally:
        worker.close()
    # the late job ran beside the long one: all its text and its end came before the long one's end
    assert order.index(("late", "done")) < order.index(("long", "done"))
    assert ("late", "text") in order
