"""The contract checks plugin authors run (rnnchat.testing) over the built-in cells, one test per check."""

import pytest

from rnnchat.testing import CELL_CHECKS, CHECKPOINT_CHECKS, check_cell, check_checkpoint

BUILTIN = [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}), ("gru", {})]


@pytest.mark.parametrize("check", CELL_CHECKS)
@pytest.mark.parametrize("cell,options", BUILTIN, ids=["rnn", "rnn-relu", "lstm", "gru"])
def test_builtin_cells_pass_the_contract(cell, options, check):
    if check == "autocast":
        from rnnchat.engine.precision import cpu_bf16_problem

        problem = cpu_bf16_problem((cell,))
        if problem:
            pytest.skip(f"this CPU cannot run bf16 recurrent layers: {problem}")
    check_cell(cell, options, only=[check])


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_tiny_builtin_checkpoints_pass_the_contract(make_checkpoint, cell):
    check_checkpoint(make_checkpoint(cell, chat={"template": "A: {text}\nB:", "stop": ["\n"]}))


def test_the_bundled_model_passes_the_contract():
    from rnnchat.plugins.manager import get_host

    if "shakespeare" not in get_host().checkpoints:
        pytest.skip("the bundled model is not built yet")
    check_checkpoint("shakespeare", only=[c for c in CHECKPOINT_CHECKS if c != "device_move"])
