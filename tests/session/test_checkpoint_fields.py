"""A checkpoint's hint and description: untrusted one-line texts, bounded; the welcome shows them."""

from __future__ import annotations

import pytest

from rnnchat.checkpoint_fields import text_field
from rnnchat.session import ChatSession
from rnnchat.session.fake_engine import FakeEngine
from rnnchat.session.framing import Framing
from rnnchat.tui.notices import welcome


@pytest.mark.parametrize("value, expected", [
    ("a poem title, e.g. 春望", "a poem title, e.g. 春望"), ("  padded  ", "padded"), ("", None),
    ("two\nlines", None), ("x" * 121, None), (42, None), (None, None), (["a"], None)])
def test_hint_is_checked(value, expected):
    assert text_field({"hint": value}, "hint") == expected


def test_not_a_dict_and_unknown_fields():
    assert text_field("hint", "hint") is None and text_field({"other": "x"}, "other") is None


def test_welcome_shows_the_hint_escaped():
    s = ChatSession("fake", autosave=False, engine=FakeEngine.opener(
        meta={"hint": "a poem title, e.g. 春望", "description": "Tang poems [bold]\x1b[31m"}))
    info = s.load()
    try:
        assert info.hint == "a poem title, e.g. 春望"
        text = welcome(info, Framing()).plain
        assert "It wants a poem title, e.g. 春望." in text and "\x1b" not in text
    finally:
        s.close()
