"""docs/plugins.md documents every hook, and each of its examples still works as a plugin."""

import inspect
import re
import shutil
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from rnnchat.plugins import hookspecs
from rnnchat.plugins.manager import PluginHost
from tests import fakeplugins

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
TEXT = DOCS.read_text(encoding="utf-8")
HOOKS = {name: fn for name, fn in vars(hookspecs).items() if hasattr(fn, "rnnchat_spec")}
BLOCK = re.compile(r"<!-- (example|example-module): ([\w.]+) -->\n```python\n(.*?)```", re.S)


def blocks(kind):
    return {name: code for k, name, code in BLOCK.findall(TEXT) if k == kind}


EXAMPLES, MODULES = blocks("example"), blocks("example-module")


def test_the_hook_specs_are_found():
    assert set(HOOKS) == {"register_cells", "register_checkpoints", "register_corpora", "register_commands"}


@pytest.mark.parametrize("hook", sorted(HOOKS))
def test_every_hook_is_documented_with_its_arguments_and_an_example(hook):
    args = ", ".join(inspect.signature(HOOKS[hook]).parameters)
    assert f"\n### {hook}({args})\n" in TEXT, f"docs/plugins.md has no section '### {hook}({args})'"
    assert hook in EXAMPLES, f"docs/plugins.md has no '<!-- example: {hook} -->' block"
    assert f"def {hook}(" in EXAMPLES[hook]


def test_documented_hooks_all_exist():
    documented = set(re.findall(r"^### (\w+)\(", TEXT, re.M))
    assert documented == set(HOOKS), f"documented but not hooks: {documented - set(HOOKS)}"


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path holding the examples as installed plugins."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("RNNCHAT_STRICT_PLUGINS", "1")
    for name, code in MODULES.items():
        (root / f"{name}.py").write_text(code, encoding="utf-8")
    yield root
    for name in MODULES:
        sys.modules.pop(name, None)


def load_example(site, hook):
    fakeplugins.make_plugin(site, hook, EXAMPLES[hook], dist=f"rnnchat-doc-{hook.replace('_', '-')}")
    from rnnchat.plugins import manager

    manager._HOST = PluginHost().load()  # strict: any plugin error raises
    info = manager._HOST.plugins[hook]
    assert info.loaded and not info.errors
    return manager._HOST


def test_register_cells_example(site):
    host = load_example(site, "register_cells")
    assert host.dist_of("cells", "leaky") == "rnnchat-doc-register-cells"
    from rnnchat.testing import check_cell

    check_cell("leaky", {"leak": 0.3})


def test_register_checkpoints_example(site, make_checkpoint):
    host = load_example(site, "register_checkpoints")
    spec = host.checkpoints["limericks"]
    shutil.copyfile(make_checkpoint("gru", name="lim"), spec.path)  # the file the package would ship
    from rnnchat.testing import check_checkpoint

    check_checkpoint("limericks")


def test_register_corpora_example(site):
    host = load_example(site, "register_corpora")
    spec = host.corpora["limericks"]
    assert Path(spec.path).name == "limericks.txt" and spec.licence == "CC0-1.0"


def test_register_commands_example(site, tmp_path):
    host = load_example(site, "register_commands")
    group = click.Group()
    host.add_commands(group)
    text = tmp_path / "t.txt"
    text.write_text("abcab\n", encoding="utf-8")
    result = CliRunner().invoke(group, ["count-chars", str(text)])
    assert result.exit_code == 0 and result.output.strip() == "4"
    assert "count-chars" in host.plugins["register_commands"].registered["commands"]


def test_testing_section_example_runs(site, make_checkpoint):
    """The conftest/test snippet of 'Testing your plugin', against the cell and model examples above."""
    load_example(site, "register_cells")
    fakeplugins.make_plugin(site, "register_checkpoints", EXAMPLES["register_checkpoints"])
    from rnnchat.plugins import manager

    manager._HOST = PluginHost().load()
    shutil.copyfile(make_checkpoint("lstm", name="lim"), manager._HOST.checkpoints["limericks"].path)
    section = TEXT.split("## Testing your plugin", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)
    assert callable(namespace["isolated_rnnchat"])
    namespace["test_cell"]()
    namespace["test_model"]()
