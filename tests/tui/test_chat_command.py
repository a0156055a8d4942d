"""`rnnchat chat [MODEL]`: the model as a positional argument (like `ollama run MODEL`), --model kept."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rnnchat.commands import chat as chat_cmd


@pytest.fixture
def opened(monkeypatch):
    seen = []
    monkeypatch.setattr(chat_cmd, "open_chat", seen.append)
    return seen


@pytest.mark.parametrize("args, model", [(["tang-poems"], "tang-poems"), (["--model", "tang-poems"], "tang-poems"),
                                         (["-m", "x", "x"], "x"), ([], None)])
def test_model_positional_or_option(opened, args, model):
    result = CliRunner().invoke(chat_cmd.chat, args)
    assert result.exit_code == 0, result.output
    assert opened == [model]


def test_two_different_models_is_a_usage_error(opened):
    result = CliRunner().invoke(chat_cmd.chat, ["a", "--model", "b"])
    assert result.exit_code == 2 and "two models given" in result.output and opened == []
