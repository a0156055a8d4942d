"""Contract checks for cells and checkpoints, for rnnchat's own tests and for plugin authors.

A plugin's test suite checks a cell or a trained model in one line::

    from rnnchat.testing import check_cell, check_checkpoint

    def test_my_cell():
        check_cell("mycell")                  # a registered name, or the class itself

    def test_my_model():
        check_checkpoint("my-model")          # a registered name, or a .safetensors path

Each check raises ``AssertionError`` with a sentence saying what broke. The
single checks are in ``CELL_CHECKS`` and ``CHECKPOINT_CHECKS`` (name ->
function) for test suites that want one test per check::

    @pytest.mark.parametrize("check", CELL_CHECKS)
    def test_contract(check):
        check_cell("mycell", only=[check])

Cell checks: ``state`` (initial state and returned states: structure, shapes,
dtypes, device, inputs never modified in place), ``forward_matches_step``
(a whole sequence in ``forward`` gives what repeated ``step`` gives, from a
non-zero state, also when the sequence is cut in two), ``gradients`` (every
parameter gets a finite, non-zero gradient through ``forward`` and through
``step``), ``autocast`` (``forward`` runs under bf16 autocast, as training
does, and stays close to fp32), ``save_load`` (a model with the cell survives
``save_checkpoint``/``load_checkpoint``, also in float16 storage), ``device_move``
(the cell gives the same numbers after ``.to(device)`` for CPU and any CUDA or
MPS device present, and its state follows it), ``same_seed`` (the same seed
builds the same weights and gives the same output).

Checkpoint checks: ``metadata``, ``forward_matches_step``, ``save_load``,
``device_move``, ``same_seed`` (the same sampling seed generates the same text
after the checkpoint's chat framing).

``isolated_rnnchat`` is a pytest fixture (autouse once imported into a
``conftest.py``) that points ``RNNCHAT_HOME`` at a temporary folder and
reloads the plugins for every test.
"""


from __future__ import annotations

from rnnchat.testing.cells import CELL_CHECKS, CellCase, check_cell
from rnnchat.testing.checkpoints import CHECKPOINT_CHECKS, check_checkpoint
from rnnchat.testing.common import available_devices, reload_plugins

__all__ = ["check_cell", "check_checkpoint", "CELL_CHECKS", "CHECKPOINT_CHECKS", "CellCase",
           "available_devices", "reload_plugins", "isolated_rnnchat", "check_probe"]


# ---- pytest fixture -------------------------------------------------------------------------------------

try:
    import pytest
except ImportError:  # pragma: no cover - only plugin test suites use the fixture
    pytest = None

if pytest is not None:
    @pytest.fixture(autouse=True)
    def isolated_rnnchat(tmp_path, monkeypatch):
        """Point RNNCHAT_HOME at a temporary folder and reload the plugins around each test.

        Import it into a plugin's ``conftest.py``: ``from rnnchat.testing import isolated_rnnchat``.
        """
        from rnnchat.plugins import manager

        monkeypatch.setenv("RNNCHAT_HOME", str(tmp_path / "rnnchat-home"))
        monkeypatch.setenv("RNNCHAT_DEVICE", "cpu")
        monkeypatch.delenv("RNNCHAT_LOAD_PLUGINS", raising=False)
        monkeypatch.delenv("RNNCHAT_STRICT_PLUGINS", raising=False)
        manager._HOST = None
        yield tmp_path / "rnnchat-home"
        manager._HOST = None
else:  # pragma: no cover
    isolated_rnnchat = None
from rnnchat.testing.probe import check_probe  # noqa: E402,F401  (the probe contract: rnnchat/testing/probe.py)
