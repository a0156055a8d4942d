"""Helpers for the training tests: tiny runs in-process, and state files compared tensor by tensor."""

from __future__ import annotations

from pathlib import Path


def tiny_config(**overrides):
    from rnnchat.engine.train import TrainConfig

    base = dict(hidden=8, layers=2, embedding=4, dropout=0.3, seq_len=32, batch_size=8, lr=1e-2, steps=40,
                warmup=5, eval_every=7, save_every=7, eval_streams=4, precision="fp32", sample_chars=20)
    base.update(overrides)
    return TrainConfig(**base)


def make_trainer(corpus_path: Path, run_dir: Path, stop_after=None, **overrides):
    import torch

    from rnnchat.engine.data import load_corpus
    from rnnchat.engine.train import Trainer

    return Trainer(tiny_config(**overrides), load_corpus(corpus_path), run_dir, None, torch.device("cpu"),
                   stop_after=stop_after)


def resume_trainer(corpus_path: Path, run_dir: Path, stop_after=None, **overrides):
    from rnnchat.engine.resume import read_state

    trainer = make_trainer(corpus_path, run_dir, stop_after=stop_after, **overrides)
    meta, tensors, _, _ = read_state(run_dir / "state.safetensors")
    trainer.restore(meta, tensors)
    return trainer


def state_tensors(run_dir: Path) -> tuple[dict, dict]:
    from rnnchat.engine.resume import read_state

    meta, tensors, _, _ = read_state(Path(run_dir) / "state.safetensors")
    return meta, tensors


def assert_same_tensors(a: dict, b: dict) -> None:
    import torch

    assert sorted(a) == sorted(b)
    different = [k for k in a if a[k].shape != b[k].shape or not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:8]}"
