"""Corpus encoding and stateful evaluation: the fast paths give the same numbers as the plain ones."""

from __future__ import annotations

import pytest

from tests.conftest import TINY_TEXT

TEXT = "ALICE:\n春眠不覺曉，處處聞啼鳥。\nnaïve café — 🙂 x\n\n"


@pytest.mark.parametrize("cap", [None, 6])
def test_encode_ids_matches_the_vocabulary(cap):
    from rnnchat.engine.data import encode_ids
    from rnnchat.core.vocab import Vocab

    vocab = Vocab.from_text(TEXT, cap)
    assert encode_ids(TEXT, vocab).tolist() == vocab.encode(TEXT).ids


def test_encode_ids_drops_unknown_characters_without_unk():
    from rnnchat.engine.data import encode_ids
    from rnnchat.core.vocab import Vocab

    vocab = Vocab(list("ALICE:\n"))
    assert encode_ids(TEXT, vocab).tolist() == vocab.encode(TEXT).ids


def test_evaluation_is_the_same_in_small_chunks(monkeypatch):
    import torch

    from rnnchat.engine import evaluate as ev
    from rnnchat.engine.data import load_corpus
    from rnnchat.engine.model import CharRNN, ModelConfig, registered_cell

    corpus = load_corpus(TINY_TEXT)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(cell="lstm", vocab_size=len(corpus.vocab), hidden=8, layers=2, embedding=4),
                    registered_cell("lstm"))
    whole = ev.evaluate(model, corpus.ids[:3000], "cpu", streams=1)
    monkeypatch.setattr(ev, "MAX_LOGITS", 16 * len(corpus.vocab))  # chunks of 16 characters
    assert ev.evaluate(model, corpus.ids[:3000], "cpu", streams=1) == pytest.approx(whole, rel=1e-5)
    total, count = 0.0, 0
    for rank in range(3):  # three ranks' parts of four streams add up to the four-stream figure
        t, c = ev.evaluate_sum(model, corpus.ids[:3000], "cpu", streams=4, part=(rank, 3))
        total, count = total + t, count + c
    assert total / count == pytest.approx(ev.evaluate(model, corpus.ids[:3000], "cpu", streams=4), rel=1e-5)
