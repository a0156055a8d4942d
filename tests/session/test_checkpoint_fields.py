"""A checkpoint's hint and description: untrusted one-line texts, bounded; the welcome shows them."""

from __future__ import annotations

import pytest

from rnnchat.store.checkpoint_fields import text_field
from rnnchat.session import ChatSession
from rnnchat.session.fake_engine import FakeEngine
from rnnchat.session.framing import Framing
from rnnchat.tui.notices import welcome


@pytest.mark.parametrize("value, expected", [
    ("a poem title, e.g. 春望", "a poem title, e.g. 春望"), ("  padded  ", "padded"), ("", None),
    ("two\nlines", None), ("x" * 81, None), ("x" * 80, "x" * 80), (42, None), (None, None), (["a"], None)])
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
        assert "fake is ready (lstm, 2×8, on cpu) · try: a poem title, e.g. 春望\n" in text and "\x1b" not in text
        assert "Tang poems [bold]\\x1b[31m" in text
    finally:
        s.close()


def test_description_is_one_paragraph_and_bounded():
    assert text_field({"description": "A model.\nOf plays."}, "description") == "A model. Of plays."
    assert text_field({"description": "x" * 501}, "description") is None


@pytest.mark.parametrize("change, why", [
    ({"hint": "two\nlines"}, "'hint' must be one line"), ({"hint": "x" * 81}, "'hint' must be a string of at most 80"),
    ({"hint": 7}, "'hint' must be a string"), ({"description": "x" * 501}, "'description' must be a string of at most 500")])
def test_a_checkpoint_with_a_bad_hint_or_description_is_refused(make_checkpoint, tmp_path, change, why):
    from rnnchat.store.checkpoint_meta import read_header
    from rnnchat.core.errors import CheckpointError
    from rnnchat.store.checkpoint_edit import set_meta

    path = make_checkpoint()
    with pytest.raises(CheckpointError, match=why):
        set_meta(path, change)
    assert read_header(path).meta.get("hint") is None  # the file is unchanged
