"""Fine-tuning (``train --init-from``): old rows kept exactly, new characters appended, the model's
shape and chat framing kept, resume of a fine-tune, and one-line refusals."""

from __future__ import annotations

import pytest

from tests.conftest import TINY_TEXT
from tests.train.helpers import tiny_config
from tests.train.test_corpora import cli

NEW = "vy?"  # characters of the tiny text the base model has never seen
TEMPLATE = {"template": "Q: {text}\nA:", "stop": ["\nQ:"]}
TINY = ["--seq-len", "32", "--batch-size", "8", "--eval-every", "2", "-q"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture
def base(make_checkpoint):
    # a vocabulary in a deliberate non-sorted order: every old character must keep its id
    chars = [c for c in sorted(set(TINY_TEXT.read_text(encoding="utf-8"))) if c not in NEW][::-1]
    return make_checkpoint(name="base", vocab=chars, chat=TEMPLATE, dropout=0.0)


def test_old_rows_kept_exactly_and_new_characters_appended(base):
    import torch

    from rnnchat.engine.checkpoint import load_checkpoint
    from rnnchat.engine.data import load_corpus
    from rnnchat.engine.finetune import extend_corpus, plan
    from rnnchat.engine.train import Trainer

    opts, chat = plan(str(base), dict(tiny_config().__dict__), given=set())
    assert chat == TEMPLATE and opts["hidden"] == 8 and opts["embedding"] == 4
    cfg = tiny_config(**{k: opts[k] for k in ("cell", "layers", "hidden", "embedding", "init_from")}, steps=4)
    old = load_checkpoint(base)
    corpus = extend_corpus(load_corpus(TINY_TEXT), old.vocab.chars)
    n = len(old.vocab)
    assert corpus.vocab.chars[:n] == old.vocab.chars and sorted(corpus.vocab.chars[n:]) == sorted(NEW)
    assert corpus.vocab.decode(corpus.ids[:200].tolist()) == TINY_TEXT.read_text(encoding="utf-8")[:200]

    trainer = Trainer(cfg, corpus, base.parent / "run", None, torch.device("cpu"), fresh=True)
    got, want = trainer.model.state_dict(), old.model.state_dict()
    for name in want:
        rows = got[name][:n] if name in ("embedding.weight", "head.weight", "head.bias") else got[name]
        assert torch.equal(rows, want[name]), name
    new_head = got["head.weight"][n:]
    assert new_head.shape == (len(NEW), 8)
    # new rows start at the mean of the old ones (plus 1% noise that tells them apart)
    assert torch.allclose(new_head, want["head.weight"].mean(0).expand_as(new_head), atol=0.05)
    assert not torch.equal(new_head[0], new_head[1])
    trainer.run()
    assert trainer.progress.step == 4 and trainer.progress.best_val is not None


def test_cli_fine_tune_keeps_template_and_resumes(base, capsys):
    from rnnchat.core import paths
    from rnnchat.store.checkpoint_meta import read_header

    code, _, err = cli(capsys, "train", str(TINY_TEXT), "--init-from", str(base), "--name", "ft", "--steps", "4",
                       "--stop-after", "2", *TINY)
    assert code in (0, None), err
    assert "stopped after step 2" in err
    code, out, err = cli(capsys, "train", "--resume", "ft", "-q")
    assert code in (0, None), err
    meta = read_header(paths.models_dir() / "ft.safetensors").meta
    old = read_header(base).meta
    assert meta["vocab"][:len(old["vocab"])] == old["vocab"] and set(meta["vocab"][len(old["vocab"]):]) == set(NEW)
    assert meta["chat"] == TEMPLATE
    assert (meta["hidden"], meta["layers"], meta["embedding"]) == (8, 2, 4)
    assert meta["training"]["init_from"]["path"] == str(base.resolve())
    assert meta["training"]["step"] == 4


def test_a_given_template_wins(base, capsys):
    from rnnchat.core import paths
    from rnnchat.store.checkpoint_meta import read_header

    code, _, err = cli(capsys, "train", str(TINY_TEXT), "--init-from", str(base), "--name", "ft2", "--steps", "1",
                       "--chat-template", "U: {text}\\n", *TINY)
    assert code in (0, None), err
    assert read_header(paths.models_dir() / "ft2.safetensors").meta["chat"] == {"template": "U: {text}\n",
                                                                                 "stop": ["\nQ:"]}


@pytest.mark.parametrize("extra,expected", [
    (["--init-from", "nosuch"], "--init-from nosuch: no model named 'nosuch'"),
    (["--init-from", "BASE", "--hidden", "16"], "--hidden 16 contradicts --init-from"),
    (["--init-from", "BASE", "--cell", "gru"], "--cell gru contradicts --init-from"),
    (["--init-from", "BASE", "--max-vocab", "10"], "cannot go with --max-vocab"),
    (["--init-from", "NOTCKPT"], "is not a valid safetensors file"),
])
def test_bad_init_from_is_one_line(base, capsys, tmp_path, extra, expected):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a model at all")
    extra = [str(base) if e == "BASE" else str(bad) if e == "NOTCKPT" else e for e in extra]
    code, _, err = cli(capsys, "train", str(TINY_TEXT), "--name", "x", "--steps", "1", *extra, *TINY)
    assert code == 1
    assert err.startswith("error: ") and expected in err and len(err.strip().splitlines()) == 1
