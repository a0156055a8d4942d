"""The real `llm` CLI with this plugin over a tiny rnnchat model (hidden 8) in a tmp RNNCHAT_HOME."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

VOCAB = "\n !,.:?ABCDEHILMNORSTacdeghilmnorstuvy"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    import torch

    from rnnchat.engine.checkpoint import build_meta, save_checkpoint
    from rnnchat.engine.model import CharRNN, ModelConfig, registered_cell
    from rnnchat.core.vocab import Vocab

    root = tmp_path_factory.mktemp("llm")
    torch.manual_seed(0)
    v = Vocab(sorted(VOCAB))
    model = CharRNN(ModelConfig(cell="lstm", vocab_size=len(v), hidden=8, layers=2, embedding=4),
                    registered_cell("lstm"))
    meta = build_meta(model, v, corpus={"name": "tiny", "sha256": "0" * 64}, val_loss=3.5,
                      chat={"template": "ME:\n{text}\n\n", "stop": ["\n\n"]})
    (root / "home" / "data" / "models").mkdir(parents=True)
    save_checkpoint(root / "home" / "data" / "models" / "tiny.safetensors", model, meta)
    return dict(os.environ, RNNCHAT_HOME=str(root / "home"), LLM_USER_PATH=str(root / "llm"),
                RNNCHAT_DEVICE="cpu")


def llm(env, *args):
    exe = shutil.which("llm", path=str(Path(sys.executable).parent)) or "llm"
    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=300)


def states(env) -> set:
    return set((Path(env["RNNCHAT_HOME"]) / "data" / "llm-states").glob("*.safetensors"))


def test_models_listed(env):
    out = llm(env, "models")
    assert out.returncode == 0, out.stderr
    assert "rnnchat: tiny" in out.stdout


def test_options_seed_and_errors(env):
    a = llm(env, "-m", "tiny", "hello", "-o", "temperature", "0.7", "-o", "seed", "1", "-o", "max_chars", "40",
            "--no-log")
    b = llm(env, "-m", "tiny", "hello", "-o", "temperature", "0.7", "-o", "seed", "1", "-o", "max_chars", "40",
            "--no-log")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout and 0 < len(a.stdout.rstrip("\n")) <= 40
    bad = llm(env, "-m", "tiny", "hello", "-o", "temperature", "500", "--no-log")
    assert bad.returncode != 0
    assert "temperature must be a number in [0, 100] (0 is greedy), not 500" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_continue_keeps_the_state(env):
    greedy = ["-o", "temperature", "0", "-o", "max_chars", "30"]
    first = llm(env, "-m", "tiny", "hi", *greedy)
    assert first.returncode == 0, first.stderr
    saved = states(env)
    reply = first.stdout[:-1]  # llm ends the output with a newline
    key = hashlib.sha256(f"tiny\0ME:\nhi\n\n{reply}\n\n".encode()).hexdigest()
    assert key in {p.stem for p in saved}  # the state after the first reply, named by what it read
    cont = llm(env, "-c", "more", *greedy)
    assert cont.returncode == 0, cont.stderr
    assert len(states(env)) == len(saved) + 1
    # the same conversation again, with every saved state gone: `-c` reads the whole text again,
    # and writes what the kept state gave
    again = llm(env, "-m", "tiny", "hi", *greedy)
    assert again.stdout == first.stdout
    for p in states(env):
        p.unlink()
    reread = llm(env, "-c", "more", *greedy)
    assert reread.returncode == 0, reread.stderr
    assert reread.stdout == cont.stdout
