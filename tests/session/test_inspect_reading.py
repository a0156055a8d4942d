"""The inspector's reading over the real engine (a tiny LSTM, hidden 8, CPU): what it shows is
exactly what the probe reads for the conversation's text from the first turn's saved state."""

from __future__ import annotations

import numpy as np
import pytest

from rnnchat.session import inspector
from rnnchat.session.inspect_target import Target, parse_target
from rnnchat.session.types import SessionError


@pytest.fixture
def talked(session):
    """The session fixture after two exchanges (fixed seed)."""
    session.update_params(seed=3, max_chars=40)
    for text in ("Hi there\nyou", "And so?"):
        for _ in session.send(text):
            pass
    yield session
    session.close()


def probe_of(s, first: int = 0):
    """The probe's activations of every quantity over the text fed from turn ``first`` on."""
    from rnnchat.engine.probe import Probe

    text = "".join(t.fed for t in s.turns[first:])
    ids = s.engine.encode(text).ids
    acts, _ = Probe(s.engine.engine.model).activations(ids, s.turns[first].snapshot.state)
    return text, acts


def test_a_given_unit_shows_the_probes_activations(talked):
    text, acts = probe_of(talked)
    r = talked.inspect(Target(layer=2, index=5, quantity="c"))
    assert r.text == text and r.skipped == 0 and (r.kind, r.description) == ("state", "cell state")
    np.testing.assert_allclose(r.values, acts[(2, "c")][:, 5], rtol=0, atol=1e-6)
    # every character shown sits at a character read that is the same character
    for colours, turn in zip(r.turns, talked.turns):
        assert colours.text == turn.text
        mapped = [(ch, r.text[p]) for ch, p in zip(turn.text, colours.positions) if p >= 0]
        assert len(mapped) == len(turn.text) and all(a == b for a, b in mapped)
    # the panel's strongest units: those of the state quantities (c and h), largest |value| first
    from rnnchat.engine.probe import strongest_at

    states = {k: v for k, v in acts.items() if k[1] in ("c", "h")}
    for t in (0, len(text) // 2, len(text) - 1):
        want = [(f"{lay}:{name}:{j}", v) for lay, name, j, v in strongest_at(states, t, count=inspector.TOP)]
        got = r.strongest(t)
        assert [g[0] for g in got] == [w[0] for w in want]
        np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], atol=1e-6)


def test_auto_picks_the_unit_with_the_largest_r_for_the_line_position(talked):
    from rnnchat.core.probe_features import builtin_features

    text, acts = probe_of(talked)
    line = next(f.values for f in builtin_features(text) if f.name == "line_position")
    best = max(((abs(np.corrcoef(line, block[:, j])[0, 1]), key, j)
                for key, block in acts.items() for j in range(block.shape[1]) if np.std(block[:, j]) > 0),
               key=lambda b: b[0])
    r = talked.inspect(parse_target("auto"))
    assert (r.layer, r.quantity, r.index) == (best[1][0], best[1][1], best[2]) and r.chosen_by == "line_position"
    assert abs(abs(r.r) - best[0]) < 1e-4
    np.testing.assert_allclose(r.values, acts[best[1]][:, best[2]], atol=1e-6)


def test_a_long_conversation_is_read_from_the_saved_state_of_a_later_turn(talked, monkeypatch):
    monkeypatch.setattr(inspector, "MAX_CHARS", len("".join(t.fed for t in talked.turns[2:])))
    text, acts = probe_of(talked, first=2)
    r = talked.inspect(Target(layer=1, index=0, quantity="f"))
    assert r.skipped == 2 and r.text == text and [c.turn for c in r.turns] == [2, 3]
    assert (r.kind, r.centre, r.half) == ("gate", 0.5, 0.5)
    np.testing.assert_allclose(r.values, acts[(1, "f")][:, 0], atol=1e-6)
    monkeypatch.setattr(inspector, "MAX_CHARS", 1)
    with pytest.raises(SessionError, match="the last turn alone is .* the inspector reads at most 1$"):
        talked.inspect(Target(layer=1, index=0))


def test_bad_units_are_one_line_errors(talked):
    for target, error in ((Target(layer=3, index=0), "the model has layers 1-2"),
                          (Target(layer=1, index=8), "layer 1 c has 8 units"),
                          (Target(layer=1, index=0, quantity="z"), "layer 1 has no quantity 'z'; it has c, h, i, f, g, o")):
        with pytest.raises(SessionError, match=error):
            talked.inspect(target)


def test_characters_the_model_did_not_read_stay_uncoloured():
    from rnnchat.session.framing import Framing

    framing = Framing("BOB:\n{text}\n\n", ("\n\n",))
    at = inspector._positions("user", "Hi Zed", "BOB:\nHi ed\n\n", framing)  # Z unknown: dropped
    assert at.tolist() == [5, 6, 7, -1, 8, 9]
    at = inspector._positions("user", "Hi", "\n\nBOB:\nHi\n\n", framing)  # after a stopped reply's closing
    assert at.tolist() == [7, 8]
    assert inspector._positions("model", "ROMEO:\nSo", "ROMEO:\nSo\n\n", framing).tolist() == list(range(9))


def test_auto_is_the_unit_rnnchat_probe_ranks_first_on_the_held_out_text(tmp_path, tiny_corpus):
    """With the model's corpus on this machine, auto ranks over its held-out text exactly as
    `rnnchat probe --chars 3000` does (from the initial state), once per model."""
    import hashlib

    import torch

    from rnnchat.store.corpora import add_corpus
    from rnnchat.engine.checkpoint import build_meta, save_checkpoint
    from rnnchat.engine.model import CharRNN, ModelConfig, registered_cell
    from rnnchat.engine.probe_run import run_probe
    from rnnchat.session import ChatSession
    from rnnchat.core.vocab import Vocab

    add_corpus(tiny_corpus, name="tinytext")
    torch.manual_seed(0)
    text = tiny_corpus.read_text(encoding="utf-8")
    vocab = Vocab(sorted(set(text)))
    model = CharRNN(ModelConfig(cell="gru", vocab_size=len(vocab), hidden=8, layers=2, embedding=4), registered_cell("gru"))
    meta = build_meta(model, vocab, corpus={"name": "tinytext", "sha256": hashlib.sha256(tiny_corpus.read_bytes()).hexdigest()},
                      training={"val_fraction": 0.4}, chat={"template": "BOB:\n{text}\n\n", "stop": ["\n\n"]})
    s = ChatSession(str(save_checkpoint(tmp_path / "held.safetensors", model, meta)))
    s.load()
    try:
        s.update_params(seed=1, max_chars=30)
        for _ in s.send("Hi there"):
            pass
        report, _ = run_probe(s.engine.engine.loaded, None, inspector.SAMPLE_CHARS, top=1)
        first = next(f["top"][0] for f in report["features"] if f["name"] == "line_position")
        r = s.inspect(parse_target("auto"))
        assert (r.layer, r.quantity, r.index) == (first["layer"], first["quantity"], first["index"])
        assert round(r.r, 4) == first["r"] and r.ranked_over == f"{report['text']['chars']:,} characters of the " \
            "held-out part of tinytext"
        text, acts = probe_of(s)
        np.testing.assert_allclose(r.values, acts[(r.layer, r.quantity)][:, r.index], atol=1e-6)
    finally:
        s.close()


def test_the_default_feature_is_the_verse_position_on_cjk_text():
    name, values = inspector._feature("床前明月光，\n疑是地上霜。", None)
    assert name == "verse_position" and values.tolist()[:7] == [1, 2, 3, 4, 5, 0, 0]
    assert inspector._feature("Good morrow.\nSir", None)[0] == "line_position"
    name, values = inspector._feature("a1b22", "digits=[0-9]+")
    assert name == "digits" and values.tolist() == [0, 1, 0, 1, 1]
