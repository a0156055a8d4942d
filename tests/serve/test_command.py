"""`rnnchat serve` refusals, before any model is opened."""

from __future__ import annotations

from rnnchat.cli import _run


def test_unknown_model_and_empty_key(capsys):
    assert _run(["serve", "--model", "nope"]) == 1
    assert "no model named 'nope'; see `rnnchat models`" in capsys.readouterr().err
    assert _run(["serve", "--model", "shakespeare", "--api-key", " "]) == 1
    assert "--api-key must not be empty" in capsys.readouterr().err
    assert _run(["serve", "--port", "70000"]) == 2
    assert _run(["serve", "--processes", "17"]) == 2  # each process holds the model: bounded
    assert _run(["serve", "--processes", "-1"]) == 2
