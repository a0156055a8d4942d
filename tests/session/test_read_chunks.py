"""A sent turn is read in chunks with progress and a cancel check between them, by both engines
(rnnchat/core/read_chunks.py): the state is that of one read, and a cancel undoes the exchange."""

from __future__ import annotations

import pytest

from rnnchat.core.errors import ReadCancelled
from rnnchat.core.read_chunks import chunks


def test_chunks_report_progress_and_stop_when_told():
    seen = []
    pieces = list(chunks(list(range(10)), 4, lambda d, t: seen.append((d, t)) or True))
    assert pieces == [(0, [0, 1, 2, 3]), (4, [4, 5, 6, 7]), (8, [8, 9])]
    assert seen == [(0, 10), (4, 10), (8, 10), (10, 10)]
    with pytest.raises(ReadCancelled, match="after 4 of 10"):
        list(chunks(list(range(10)), 4, lambda d, t: d < 4))
    with pytest.raises(ValueError):
        list(chunks([1], 0))


def test_torch_engine_reads_in_chunks_like_one_read_and_cancels(session):
    """hidden 8, CPU: the chunked read equals one feed; a cancelled send leaves the session as before."""
    import torch

    eng = session.engine
    eng.engine.chunk = 7
    text = "BOB:\nWhat news? " * 5
    ids = eng.encode(text).ids
    seen = []
    snap = eng.read(eng.initial().state, ids, watch=lambda d, t: seen.append(d) or True)
    logits, state = eng.worker.call(eng.engine.feed, ids, eng.initial().state, 10_000)
    assert seen == list(range(0, len(ids), 7)) + [len(ids)]
    assert torch.allclose(snap.logits, logits, atol=1e-6)
    before, turns = session.current_state, list(session.turns)
    reply = session.send("Who goes there? " * 3)
    reply.on_progress = lambda done, total: reply.cancel() if done >= 14 else None
    with pytest.raises(ReadCancelled):
        list(reply)
    assert session.current_state is before and session.turns == turns and not session.busy
    list(session.send("Who goes there?"))
    assert len(session.turns) == len(turns) + 2 and session.turns[-2].fed == eng.decode(eng.encode("BOB:\nWho goes there?\n\n").ids)
