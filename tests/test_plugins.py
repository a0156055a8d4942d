"""The plugin host: entry points, isolation of broken plugins, duplicates, allow-lists."""

import json
import os

import pytest

from rnnchat.core.errors import PluginError
from rnnchat.plugins.manager import PluginHost
from tests import fakeplugins as fp
from tests.conftest import run_cli


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    return root


def host():
    return PluginHost().load()


def test_builtins_register_through_hooks():
    h = host()
    assert {"rnn", "lstm", "gru"} <= set(h.cells)
    assert h.owner_of("cells", "lstm") == "rnnchat.cells"
    assert h.plugins["rnnchat.cells"].builtin and h.plugins["rnnchat.cells"].loaded


def test_good_plugin_is_loaded_with_its_distribution(site):
    fp.make_plugin(site, "good", fp.GOOD_CELL, dist="rnnchat-good", version="2.3")
    h = host()
    assert "twin" in h.cells
    info = h.plugins["good"]
    assert info.version == "2.3" and info.dist == "rnnchat-good" and info.registered == {"cells": ["twin"]}


@pytest.mark.parametrize("source,error", [
    (fp.IMPORT_ERROR, "broken on purpose"),
    (fp.BAD_SIGNATURE, "surprise"),
    (fp.RAISES_HALFWAY, "boom inside the hook"),
    (fp.WRONG_TYPE, "expects a CellSpec"),
    (fp.MISSPELT, "unknown hook 'register_cels'"),
    (fp.RETURNS_VALUE, "returned list"),
])
def test_broken_plugin_is_recorded_and_skipped(site, source, error):
    fp.make_plugin(site, "broken", source)
    fp.make_plugin(site, "good", fp.GOOD_CELL)
    h = host()
    info = h.plugins["broken"]
    assert not info.loaded and error in " ".join(info.errors)
    assert info.registered == {}
    assert "halfway" not in h.cells  # nothing half-registered
    assert {"lstm", "twin"} <= set(h.cells)


def test_duplicate_name_is_refused_naming_both_plugins(site):
    fp.make_plugin(site, "dupe", fp.DUPLICATE)
    h = host()
    assert h.owner_of("cells", "lstm") == "rnnchat.cells"
    msg = " ".join(h.plugins["dupe"].errors)
    assert "'lstm'" in msg and "dupe" in msg and "rnnchat.cells" in msg
    assert "dupe-ok" in h.cells


def test_allow_list(site, monkeypatch):
    fp.make_plugin(site, "good", fp.GOOD_CELL)
    fp.make_plugin(site, "broken", fp.IMPORT_ERROR)
    monkeypatch.setenv("RNNCHAT_LOAD_PLUGINS", "good")
    h = host()
    assert "good" in h.plugins and "broken" not in h.plugins
    monkeypatch.setenv("RNNCHAT_LOAD_PLUGINS", "")
    h = host()
    assert "good" not in h.plugins and "lstm" in h.cells  # built-ins always load


def test_strict_mode_turns_errors_into_failures(site, monkeypatch):
    fp.make_plugin(site, "broken", fp.IMPORT_ERROR)
    monkeypatch.setenv("RNNCHAT_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken on purpose"):
        host()


def _env(site):
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.slow  # a real process or a training run: 4-6 s
def test_cli_survives_a_broken_plugin_and_lists_its_error(site):
    fp.make_plugin(site, "broken", fp.IMPORT_ERROR)
    fp.make_plugin(site, "cmd", fp.COMMAND)
    r = run_cli("plugins", "--json", env=_env(site))
    assert r.returncode == 0, r.stderr
    infos = {p["name"]: p for p in json.loads(r.stdout)}
    assert "broken on purpose" in infos["broken"]["errors"][0]
    assert infos["cmd"]["registered"] == {"commands": ["hello"]}
    r = run_cli("hello", env=_env(site))
    assert r.returncode == 0 and "hello from a plugin" in r.stdout
    r = run_cli("cells", env=_env(site))
    assert r.returncode == 0 and "lstm" in r.stdout


def test_cell_that_is_not_a_proper_cell_drops_its_plugin(site):
    fp.make_plugin(site, "notcell", fp.NOT_A_CELL)
    h = host()
    assert "fake" in h.cells  # string factories are checked when cells are first used
    h.verify_cells()
    info = h.plugins["notcell"]
    assert not info.loaded and "not a proper cell" in " ".join(info.errors)
    assert "fake" not in h.cells and "fake-model" not in h.checkpoints and "lstm" in h.cells
    r = run_cli("plugins", "--json", env=_env(site))
    row = next(p for p in json.loads(r.stdout) if p["name"] == "notcell")
    assert r.returncode == 0 and "not a proper cell" in row["errors"][0]


def test_plugin_cannot_replace_a_builtin_command(site):
    fp.make_plugin(site, "hijack", fp.HIJACK)
    r = run_cli("models", env=_env(site))
    assert r.returncode == 0 and "hijacked" not in r.stdout
    infos = {p["name"]: p for p in json.loads(run_cli("plugins", "--json", env=_env(site)).stdout)}
    assert "refused to replace existing command(s): models" in infos["hijack"]["errors"][0]


@pytest.mark.slow  # real processes: 3-4 s
def test_bad_cell_options_are_one_line(tiny_corpus):
    r = run_cli("train", str(tiny_corpus), "--steps", "2", "--name", "x", "--cell-options", '{"bogus": 1}')
    assert r.returncode == 1 and "Traceback" not in r.stderr and "bogus" in r.stderr
    r = run_cli("train", str(tiny_corpus), "--steps", "2", "--name", "x", "--cell", "rnn",
                "--cell-options", '{"nonlinearity": 3}')
    assert r.returncode == 1 and "Traceback" not in r.stderr


@pytest.mark.slow  # a real process or a training run: 4-6 s
def test_non_ascii_chat_template_survives_the_command_line(tiny_corpus):
    r = run_cli("train", str(tiny_corpus), "--steps", "2", "--hidden", "8", "--seq-len", "16", "--batch-size", "2",
                "--name", "zh", "-q", "--chat-template", "\\n《{text}》", "--chat-stop", "\\n\\n")
    assert r.returncode == 0, r.stderr
    info = json.loads(run_cli("inspect", "zh", "--json").stdout)
    assert info["chat"] == {"template": "\n《{text}》", "stop": ["\n\n"]}


def test_checking_a_cell_leaves_every_random_state_as_it_was():
    """A plugin cell is built and run when checked; a seeded model must not depend on which plugins
    are installed, so the check leaves torch's, Python's and NumPy's random states alone."""
    import random

    import numpy as np
    import torch

    from rnnchat.engine.cell_probe import probe_cell, rng_kept
    from rnnchat.engine.model import registered_cell

    cell = registered_cell("lstm")
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(0), random.seed(0), np.random.seed(0)
    probe_cell("lstm", cell)
    with rng_kept():
        torch.rand(5), random.random(), np.random.rand()
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]
