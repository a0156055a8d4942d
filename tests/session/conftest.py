"""Session fixtures: a tiny real model (hidden 8, CPU) with Shakespeare-style speaker framing."""

from __future__ import annotations

import pytest

CHAT = {"template": "BOB:\n{text}\n\n", "stop": ["\n\n"]}


@pytest.fixture
def tiny_model(make_checkpoint):
    return make_checkpoint("lstm", chat=CHAT)


@pytest.fixture
def session(tiny_model):
    from rnnchat.session import ChatSession

    s = ChatSession(str(tiny_model))
    s.load()
    s.update_params(max_chars=60)
    return s
