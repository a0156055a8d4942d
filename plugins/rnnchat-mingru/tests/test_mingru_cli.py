"""The plugin as a user meets it: `rnnchat cells`, `rnnchat train --cell mingru`, generation, a missing plugin."""

import json
import os
import subprocess
import sys

import pytest

from rnnchat.testing import check_checkpoint

TEXT = "".join(f"the {w} sat on the mat; the {w} ran.\n\n" for w in
               ["cat", "dog", "hen", "fox", "owl", "rat", "bee", "ant"] * 6)


def rnnchat(*args, env=None):
    return subprocess.run([sys.executable, "-m", "rnnchat", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=300)


def test_cells_are_listed():
    out = rnnchat("cells", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["mingru"]["plugin"] == rows["minlstm"]["plugin"] == "mingru"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny model per cell, trained through the real command line."""
    root = tmp_path_factory.mktemp("mingru")
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    env = {"RNNCHAT_HOME": str(root / "home"), "RNNCHAT_DEVICE": "cpu"}
    paths = {}
    for cell in ("mingru", "minlstm"):
        out = root / f"{cell}.safetensors"
        res = rnnchat("train", str(corpus), "--cell", cell, "--layers", "2", "--hidden", "8", "--embedding", "4",
                      "--seq-len", "16", "--batch-size", "4", "--steps", "4", "--precision", "fp32",
                      "--out", str(out), "-q", env=env)
        assert res.returncode == 0, res.stderr
        paths[cell] = out
    return paths


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_train_then_generate(trained, cell):
    path = trained[cell]
    info = json.loads(rnnchat("inspect", str(path), "--json").stdout)
    assert info["cell"] == cell and info["cell_plugin"] == "rnnchat-mingru"
    out = rnnchat("generate", "the cat", "-m", str(path), "--seed", "3", "-n", "40")
    assert out.returncode == 0, out.stderr
    again = rnnchat("generate", "the cat", "-m", str(path), "--seed", "3", "-n", "40")
    assert out.stdout == again.stdout and out.stdout.strip()


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_checkpoint_contract(trained, cell):
    check_checkpoint(trained[cell])


def test_without_the_plugin_loading_names_it(trained):
    out = rnnchat("generate", "the", "-m", str(trained["mingru"]), env={"RNNCHAT_LOAD_PLUGINS": ""})
    assert out.returncode == 1
    assert "rnnchat install rnnchat-mingru" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_a_chat_session_carries_state_and_regenerates_exactly(trained, cell):
    from rnnchat.session import ChatSession

    session = ChatSession(str(trained[cell]))
    info = session.load()
    assert info.cell == cell
    session.update_params(max_chars=30)
    first = "".join(chunk.text for chunk in session.send("the cat"))
    second = "".join(chunk.text for chunk in session.send("the dog"))
    again = "".join(chunk.text for chunk in session.regenerate(same_seed=True))
    assert again == second and len(session.turns) == 4 and isinstance(first, str)
