"""One `rnnchat serve` subprocess per module over a tiny model (hidden 8) in a tmp RNNCHAT_HOME."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY_TEXT

KEY = "test-key"
ROOT = Path(__file__).resolve().parents[2]


def save_tiny(path: Path) -> Path:
    import torch

    from rnnchat.engine.checkpoint import build_meta, save_checkpoint
    from rnnchat.engine.model import CharRNN, ModelConfig, registered_cell
    from rnnchat.core.vocab import Vocab

    torch.manual_seed(0)
    v = Vocab(sorted(set(TINY_TEXT.read_text(encoding="utf-8"))))
    model = CharRNN(ModelConfig(cell="lstm", vocab_size=len(v), hidden=8, layers=2, embedding=4),
                    registered_cell("lstm"))
    meta = build_meta(model, v, corpus={"name": "tiny", "sha256": "0" * 64}, val_loss=3.5,
                      chat={"template": "ME:\n{text}\n\n", "stop": ["\n\n"]})
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(path, model, meta)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base_url, home): a running server with model ``tiny``, 2 streams, no queue, key ``test-key``."""
    home = tmp_path_factory.mktemp("serve-home")
    save_tiny(home / "data" / "models" / "tiny.safetensors")
    port = free_port()
    env = dict(os.environ, RNNCHAT_HOME=str(home), RNNCHAT_DEVICE="cpu", PYTHONPATH=str(ROOT))
    log = open(home / "server.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "rnnchat", "serve", "--model", "tiny", "--port", str(port),
                             "--api-key", KEY, "--max-streams", "2", "--queue", "0", "--sessions", "4"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"server exited: {log.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("server did not start")
            time.sleep(0.2)
    yield base, home, proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def client(server):
    import openai

    return openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0, timeout=60)
