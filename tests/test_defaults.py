"""One default per sampling value: ``SamplingParams``' (rnnchat/core/params.py). The settings embed it,
``rnnchat generate`` and the HTTP API take their defaults from it."""

from __future__ import annotations

from dataclasses import fields

from rnnchat.core.params import SamplingParams

DEFAULTS = SamplingParams()


def test_the_settings_embed_the_sampling_values():
    from rnnchat.session.settings import Settings

    assert Settings().sampling == DEFAULTS
    assert set(Settings.SAMPLING) == {f.name for f in fields(SamplingParams)} - {"stop"}
    assert all(getattr(Settings(), name) == getattr(DEFAULTS, name) for name in Settings.SAMPLING)


def test_generate_takes_its_defaults_from_sampling_params():
    from rnnchat.commands.generate import generate

    ctx = generate.make_context("generate", ["x"])
    for name in _options():
        assert ctx.params[name] == getattr(DEFAULTS, name), name
    assert ctx.params["max_chars"] == DEFAULTS.max_chars  # was 500 here and 1000 in the chat


def test_the_http_api_takes_its_defaults_from_sampling_params():
    from rnnchat.serve.requests import parse

    req = parse({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, "chat")
    assert req.params == DEFAULTS


def _options() -> list[str]:
    """The sampling values that are options of ``rnnchat generate`` with a default."""
    return [f.name for f in fields(SamplingParams) if f.name not in ("stop", "seed")]
