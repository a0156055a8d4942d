"""rnnchat.testing catches broken cells and checkpoints, each with a sentence saying what broke."""

import pytest
import torch
from torch import nn

from rnnchat.engine.cells import GRUCell
from rnnchat.testing import CELL_CHECKS, check_cell, check_checkpoint


class StepDisagrees(GRUCell):
    def step(self, x, h):
        h, _ = super().step(x, h)
        return h * 1.01, h * 1.01


class ModifiesState(GRUCell):
    def forward(self, x, state):
        y, h = super().forward(x, state)
        state.add_(0.0).mul_(0.5)
        return y, h


class UnusedParameter(GRUCell):
    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.spare = nn.Parameter(torch.ones(3))


class WrongDevice(GRUCell):
    def initial_state(self, batch):
        return torch.zeros(batch, self.hidden_size, dtype=torch.float32)


class BatchLast(GRUCell):
    def initial_state(self, batch):
        return torch.zeros(self.hidden_size, batch)


class Unseeded(GRUCell):
    def reset_parameters(self):
        gen = torch.Generator().manual_seed(torch.randint(0, 10**6, (1,), generator=torch.Generator()
                                                          .manual_seed(id(self) % 997)).item())
        for p in self.parameters():
            with torch.no_grad():
                p.copy_(torch.rand(p.shape, generator=gen) - 0.5)


@pytest.mark.parametrize("cls,check,message", [
    (StepDisagrees, "forward_matches_step", "forward outputs and repeated step outputs"),
    (ModifiesState, "state", "modified the state passed in"),
    (UnusedParameter, "gradients", "parameter spare gets no gradient"),
    (WrongDevice, "state", "initial_state has dtype torch.float32"),
    (BatchLast, "state", "the batch must be the first dimension"),
    (Unseeded, "same_seed", "differs between two cells built with the same seed"),
])
def test_broken_cells_fail_the_right_check(cls, check, message):
    with pytest.raises(AssertionError, match=message):
        check_cell(cls, only=[check])


def test_a_good_class_passes_before_registration():
    check_cell(GRUCell)


def test_unknown_check_and_unknown_cell_are_clear():
    with pytest.raises(ValueError, match="unknown cell check"):
        check_cell("gru", only=["nope"])
    with pytest.raises(AssertionError, match="cell 'nope' is not registered"):
        check_cell("nope")
    assert set(CELL_CHECKS) == {"state", "forward_matches_step", "gradients", "autocast", "save_load",
                                "device_move", "same_seed"}


def test_a_checkpoint_that_does_not_load_fails(make_checkpoint):
    path = make_checkpoint("gru", chat={"template": "no placeholder", "stop": ["\n"]})
    with pytest.raises(AssertionError, match="does not load: .*chat template must be a string containing"):
        check_checkpoint(path, only=["metadata"])


def test_a_chat_template_the_vocabulary_cannot_spell_fails(make_checkpoint):
    path = make_checkpoint("gru", chat={"template": "\u300a{text}\u300b", "stop": ["\n"]})
    with pytest.raises(AssertionError, match="chat template uses characters the vocabulary lacks"):
        check_checkpoint(path, only=["metadata"])


def test_an_unknown_checkpoint_is_clear():
    with pytest.raises(AssertionError, match=r"^no model named 'no-such-model' and no such file; see `rnnchat models`"):
        check_checkpoint("no-such-model")
