"""Shared fixtures: an isolated RNNCHAT_HOME, a tiny corpus and tiny checkpoints (hidden size 8, CPU)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPORA = ROOT.parent / "shared" / "corpora"
TINY_TEXT = (ROOT / "corpora" / "tiny.txt")


@pytest.fixture(autouse=True)
def rnnchat_home(tmp_path, monkeypatch):
    """Every test gets its own data/config root and a fresh plugin host."""
    home = tmp_path / "home"
    monkeypatch.setenv("RNNCHAT_HOME", str(home))
    monkeypatch.setenv("RNNCHAT_DEVICE", "cpu")
    # One torch thread, here and in every rnnchat subprocess: the tests' models are tiny, where a
    # second OpenMP thread only adds a barrier per time step, and on a busy machine a thread that
    # waits for a core made a 1 M-character forward take minutes instead of seconds. Tests that
    # need another count set it themselves.
    monkeypatch.setenv("RNNCHAT_THREADS", "1")
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    monkeypatch.delenv("RNNCHAT_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("RNNCHAT_STRICT_PLUGINS", raising=False)
    from rnnchat.plugins import manager

    manager._HOST = None
    yield home
    manager._HOST = None


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(TINY_TEXT.read_text(encoding="utf-8"), encoding="utf-8")
    return path


@pytest.fixture
def make_checkpoint(tmp_path):
    """make_checkpoint(cell="lstm", **kw) -> path of a saved tiny model (hidden 8, seed 0)."""

    def make(cell="lstm", name="tiny", hidden=8, layers=2, embedding=4, vocab=None, chat=None, **meta):
        import torch

        from rnnchat.engine.checkpoint import build_meta, save_checkpoint
        from rnnchat.engine.model import CharRNN, ModelConfig, registered_cell
        from rnnchat.core.vocab import Vocab

        torch.manual_seed(0)
        v = Vocab(vocab or sorted(set(TINY_TEXT.read_text(encoding="utf-8"))))
        model = CharRNN(ModelConfig(cell=cell, vocab_size=len(v), hidden=hidden, layers=layers,
                                    embedding=embedding, cell_options=meta.pop("cell_options", {})),
                        registered_cell(cell))
        m = build_meta(model, v, corpus={"name": "tiny", "sha256": "0" * 64}, val_loss=meta.pop("val_loss", 3.5),
                       chat=chat or {"template": "{text}", "stop": ["\n\n"]}, **meta)
        path = tmp_path / f"{name}.safetensors"
        return save_checkpoint(path, model, m)

    return make


def needs_cpu_bf16(*kinds: str):
    """Skip unless bf16 autocast runs these built-in layers on this CPU (an x86-64 CPU without
    AVX512-BF16 or AMX cannot run a bf16 LSTM: rnnchat.engine.precision.cpu_bf16_problem)."""
    from rnnchat.engine.precision import BUILTIN_KINDS, cpu_bf16_problem

    problem = cpu_bf16_problem(kinds or BUILTIN_KINDS)
    return pytest.mark.skipif(problem is not None, reason=f"this CPU cannot run bf16 recurrent layers: {problem}")


def run_cli(*args, input=None, env=None, timeout=120):
    """Run the real ``rnnchat`` entry point in a subprocess."""
    import subprocess
    import sys

    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "rnnchat", *args], input=input, capture_output=True,
                          text=True, env=full_env, timeout=timeout)


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test: with other work on the 2 cores, a second OpenMP thread
    waiting for a core makes tiny forward calls take seconds, and a run must be reproducible
    whatever the thread count (results are the same either way)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
