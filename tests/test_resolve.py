"""One name-or-path resolver (rnnchat/plugins/resolve.py): registered names, files, the default
model, and the one-line error that every caller (engine, ``rnnchat inspect``, the chat) gives."""

from __future__ import annotations

import pytest

from rnnchat.core.errors import ModelNotFound
from rnnchat.plugins.resolve import DEFAULT_MODEL, ModelRef, resolve_model
from rnnchat.plugins.specs import CheckpointSpec


class Host:
    def __init__(self, **files) -> None:
        self.checkpoints = {name: CheckpointSpec(name, path) for name, path in files.items()}


@pytest.fixture
def files(tmp_path):
    for name in ("a", "b", "loose"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"x")
    return tmp_path


def test_a_registered_name_is_its_file(files):
    host = Host(a=files / "a.safetensors", b=files / "b.safetensors")
    ref = resolve_model("b", host)
    assert ref == ModelRef(files / "b.safetensors", "b")
    assert ref.source == "b" and ref.label == "b"


def test_a_path_is_the_file_and_a_registered_file_keeps_its_name(files, monkeypatch):
    host = Host(a=files / "a.safetensors")
    loose = resolve_model(str(files / "loose.safetensors"), host)
    assert loose.name is None and loose.path == files / "loose.safetensors"
    assert loose.source == str(files / "loose.safetensors") and loose.label == "loose"
    monkeypatch.chdir(files)
    (files / "link.safetensors").symlink_to(files / "a.safetensors")
    for spelling in ("./a.safetensors", "link.safetensors", files / "a.safetensors"):
        ref = resolve_model(spelling, host)
        assert ref.name == "a" and ref.source == "a", spelling


def test_a_name_wins_over_a_file_of_that_name(files, monkeypatch):
    monkeypatch.chdir(files)
    (files / "b").write_bytes(b"not this one")
    assert resolve_model("b", Host(b=files / "b.safetensors")).path == files / "b.safetensors"


def test_home_is_expanded(files, monkeypatch):
    monkeypatch.setenv("HOME", str(files))
    assert resolve_model("~/loose.safetensors", Host()).path == files / "loose.safetensors"


def test_no_name_is_the_default_model_else_the_first_registered(files):
    assert resolve_model(None, Host(a=files / "a.safetensors", **{DEFAULT_MODEL: files / "b.safetensors"})).name \
        == DEFAULT_MODEL
    assert resolve_model(None, Host(b=files / "b.safetensors", a=files / "a.safetensors")).name == "b"
    with pytest.raises(ModelNotFound, match=r"^no model is installed; train one with `rnnchat train"):
        resolve_model(None, Host())


@pytest.mark.parametrize("given", ["nosuch", "/no/such/file.safetensors", "", "  ", "evil\x1b[31m\nname", "a\0b"])
def test_a_missing_model_is_one_line_naming_it_and_what_to_do(files, given):
    with pytest.raises(ModelNotFound) as err:
        resolve_model(given, Host(a=files / "a.safetensors", b=files / "b.safetensors"))
    text = str(err.value)
    assert "\n" not in text and "\x1b" not in text and "\0" not in text
    assert text.startswith("no model named ") and "and no such file; see `rnnchat models` (known: a, b)" in text
    if given.isprintable():
        assert repr(given) in text


def test_not_a_name_or_path_is_a_programming_error():
    with pytest.raises(TypeError):
        resolve_model(3, Host())


def test_every_caller_gives_the_resolvers_error():
    """``rnnchat inspect``, the engine and the plugin authors' checks all say the same line."""
    from rnnchat.commands.info import inspect_checkpoint
    from rnnchat.engine.runtime import open_engine
    from rnnchat.testing.checkpoints import _checkpoint_case

    with pytest.raises(ModelNotFound) as expected:
        resolve_model("nosuch-model")
    with pytest.raises(ModelNotFound) as by_inspect:
        inspect_checkpoint("nosuch-model", as_json=False)
    with pytest.raises(ModelNotFound) as by_engine:
        open_engine("nosuch-model", "cpu")
    with pytest.raises(AssertionError) as by_checks:
        _checkpoint_case("nosuch-model")
    assert str(by_inspect.value) == str(by_engine.value) == str(by_checks.value) == str(expected.value)


def test_the_chat_names_a_model_the_resolvers_way(make_checkpoint, rnnchat_home):
    """A session opened by the path of a registered model shows (and the settings keep) its name;
    one opened by any other file shows the file's stem and keeps its path."""
    from rnnchat.plugins import manager
    from rnnchat.session import ChatSession

    loose = make_checkpoint()
    models = rnnchat_home / "data" / "models"
    models.mkdir(parents=True)
    (models / "mine.safetensors").write_bytes(loose.read_bytes())
    manager._HOST = None
    sessions = [ChatSession(str(models / "mine.safetensors")), ChatSession(str(loose))]
    try:
        mine, other = (s.load() for s in sessions)
    finally:
        for s in sessions:
            s.close()
    assert (mine.name, mine.source) == ("mine", "mine")
    assert (other.name, other.source, other.path) == (loose.stem, str(loose), str(loose))
