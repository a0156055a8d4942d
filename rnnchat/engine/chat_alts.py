"""The chat's alternatives: K replies from one state, one batched step per character.

:func:`produce` runs on the engine's worker thread (``ChatEngine.alternatives`` hands it to an
:class:`~rnnchat.engine.alts.AltGeneration`): K streams over
:class:`~rnnchat.engine.multi.BatchedStreams`, alternative j with ``seeds[j]``, reading the
session's live sampling values once per character as a single reply does. Each alternative
samples exactly as a single stream with its seed (tests/speed/test_batched.py), so a picked one
is what ``regenerate`` with its seed writes, and its end state continues exactly.
"""

from __future__ import annotations

import threading

from rnnchat.engine import states
from rnnchat.engine.alts import AltEnd, AltGeneration, AltToken
from rnnchat.engine.chat import RecordingSampler, Snapshot
from rnnchat.engine.multi import BatchedStreams
from rnnchat.core.errors import SettingError
from rnnchat.core.params import LiveParams


class ProbSampler(RecordingSampler):
    """Also keeps the probability of every id chosen (BatchedStreams drops it)."""

    def __init__(self, params, seed: int, banned: int | None = None) -> None:
        self.probs: list[float] = []
        super().__init__(params, seed, banned)

    def __call__(self, logits):
        i, p = super().__call__(logits)
        self.probs.append(p)
        return i, p


def produce(chat, start, params: LiveParams, seeds: list[int], cancel: threading.Event, gen: AltGeneration):
    """Write the alternatives into ``gen.buf`` (on the engine thread). ``chat``: the ChatEngine."""
    engine = chat.engine
    try:
        streams = BatchedStreams(engine)
    except SettingError as exc:  # a third-party cell, or a model on CUDA/MPS
        raise SettingError(f"alternatives need the batched CPU step: {exc}") from None
    values = params.current
    samplers, index = [], {}
    for j, seed in enumerate(seeds):
        # a capped vocabulary's shared rare-character token (vocab.UNK) is never written, as in a reply
        samplers.append(ProbSampler(values, seed, banned=engine.vocab.unk))
        index[streams.add(start.logits, start.state, values, samplers[j])] = j
    sids = list(index)
    shown = [0] * len(seeds)
    buf, first = gen.buf, True

    def emit(j: int, text: str) -> None:
        probs = samplers[j].probs
        for c in text:
            buf.append(AltToken(j, c, probs[shown[j]]))
            shown[j] += 1

    while streams.active:
        if cancel.is_set():
            for sid in streams.active:
                streams.cancel(sid)
            break
        if params.current is not values:  # the values of this character: read once, used for all of it
            values = params.current
            streams.set_params(values)
        for sid, text in streams.step().items():
            emit(index[sid], text)
        if first and buf:  # the first characters at once; the reader polls for the rest (pipe.POLL)
            gen.ready.set()
            first = False
    ends = []
    for sid in sids:
        j = index[sid]
        _, reason, logits, state = streams.result(sid)
        chosen = samplers[j].chosen
        if reason != "stop":  # characters held back as a possible stop sequence are the reply's
            emit(j, chat.decode(chosen[shown[j]:]))
        ends.append(AltEnd(reason, chat.decode(chosen), Snapshot(state, logits, states.state_to_bytes(state, logits))))
    return ("cancelled" if cancel.is_set() else "done"), "", ends
