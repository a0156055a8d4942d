"""A capped vocabulary's shared rare-character token (U+FFFD) is never sampled in the chat."""

from __future__ import annotations

import numpy as np

from rnnchat.engine.sampling import Sampler
from rnnchat.core.params import SamplingParams
from rnnchat.core.vocab import UNK


def test_sampler_never_draws_the_banned_id():
    logits = np.zeros(5, np.float32)
    logits[3] = 20.0  # the model is all but sure of id 3
    for params in (SamplingParams(temperature=1.0), SamplingParams(temperature=0.0),
                   SamplingParams(temperature=0.7, top_k=2, repetition_penalty=1.3)):
        s = Sampler(params, seed=1, banned=3)
        assert all(s(logits)[0] != 3 for _ in range(200))
    assert Sampler(SamplingParams(temperature=0.0), seed=1)(logits)[0] == 3  # unbanned: chosen


def test_chat_with_an_unk_vocabulary_never_writes_it(make_checkpoint):
    from rnnchat.session import ChatSession

    chars = sorted(set("abcdefgh \n:BO")) + [UNK]
    s = ChatSession(str(make_checkpoint("gru", vocab=chars, chat={"template": "BOB:\n{text}\n\n", "stop": ["\n\n"]})))
    s.load()
    try:
        s.update_params(max_chars=300, temperature=3.0, seed=2)  # wild: every id is likely
        text = "".join(c.text for c in s.send("abc"))
        assert text and UNK not in text
    finally:
        s.close()
