"""The bundled model's line-position unit, recomputed without rnnchat's model.

``rnnchat probe shakespeare`` reads the held-out part of tinyshakespeare (found
by name, as a user who ran ``rnnchat corpora add`` has it) and reports the unit
that tracks the position in the line. This test reads the checkpoint's tensors
with ``safetensors.numpy``, runs the LSTM equations in NumPy over the same
text, and recomputes which unit correlates most and by how much.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from rnnchat.cli import _run
from tests.conftest import SHARED_CORPORA

CORPUS = SHARED_CORPORA / "tinyshakespeare.txt"
MODEL = Path(__file__).resolve().parents[1] / "rnnchat" / "default_plugins" / "models" / "shakespeare.safetensors"
CHARS = 3000


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_lstm(weights: dict, ids: list[int], layers: int) -> dict:
    """{(layer, name): [T, H]} for the LSTM equations (gate order i, f, g, o), every layer from zero state."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    x = w["embedding.weight"][ids]
    out = {}
    for layer in range(layers):
        p = f"layers.{layer}."
        w_hh = w[p + "weight_hh"].T
        inputs = x @ w[p + "weight_ih"].T + w[p + "bias_ih"] + w[p + "bias_hh"]
        size = w_hh.shape[0]
        h, c = np.zeros(size), np.zeros(size)
        found = {n: np.empty((len(ids), size)) for n in "cifgoh"}
        for t in range(len(ids)):
            z = inputs[t] + h @ w_hh
            i, f, g, o = sigmoid(z[:size]), sigmoid(z[size:2 * size]), np.tanh(z[2 * size:3 * size]), sigmoid(z[3 * size:])
            c = f * c + i * g
            h = o * np.tanh(c)
            for name, value in zip("cifgoh", (c, i, f, g, o, h)):
                found[name][t] = value
        out.update({(layer + 1, n): v for n, v in found.items()})
        x = found["h"]
    return out


def pearson(a: np.ndarray, f: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    f = f - f.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num((f @ a) / np.sqrt((f @ f) * (a * a).sum(axis=0)))


@pytest.fixture
def one_blas_thread():
    """NumPy's matrix-vector products on one thread: on a busy machine more threads only wait for cores."""
    from rnnchat.engine.blas import blas_threads, set_blas_threads

    before = blas_threads()
    set_blas_threads(1)
    yield
    set_blas_threads(before)


@pytest.mark.skipif(not CORPUS.exists(), reason=f"{CORPUS} is not on this machine")
def test_line_position_unit_recomputed_with_numpy(capsys, one_torch_thread, one_blas_thread):
    assert _run(["corpora", "add", str(CORPUS), "--name", "tinyshakespeare"]) == 0
    capsys.readouterr()
    assert _run(["probe", "shakespeare", "--chars", str(CHARS), "--json", "--top", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["text"]["held_out"] and report["text"]["chars"] == CHARS
    best = next(f for f in report["features"] if f["name"] == "line_position")["top"][0]
    assert abs(best["r"]) >= 0.8

    weights = load_file(str(MODEL))
    meta = json.loads(json.loads(MODEL.read_bytes()[8:8 + int.from_bytes(MODEL.read_bytes()[:8], "little")])
                      ["__metadata__"]["rnnchat"])
    vocab = {ch: i for i, ch in enumerate(meta["vocab"])}
    text = CORPUS.read_text(encoding="utf-8")
    start = int(len(text) * (1 - meta["training"]["val_fraction"]))
    assert report["text"]["start"] == start
    chunk = text[start:start + CHARS]
    acts = numpy_lstm(weights, [vocab[ch] for ch in chunk], meta["layers"])

    position, p = np.empty(CHARS), 0
    for k, ch in enumerate(chunk):
        p = 0 if ch == "\n" else p + 1
        position[k] = p
    ranked = sorted(((abs(r[j]), layer, name, j, r[j]) for (layer, name), a in acts.items()
                     for r in [pearson(a, position)] for j in [int(np.argmax(np.abs(r)))]), reverse=True)
    _, layer, name, index, r = ranked[0]
    assert (layer, name, index) == (best["layer"], best["quantity"], best["index"])
    assert abs(r - best["r"]) < 2e-3
