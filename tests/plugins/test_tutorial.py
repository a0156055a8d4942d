"""docs/plugin-tutorial.md works as printed: its files make a plugin whose own tests pass."""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugin-tutorial.md"
FILES = dict(re.findall(r"```(?:python|toml)\n# file: (\S+)\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S))


def test_the_tutorial_has_every_file():
    assert set(FILES) == {"pyproject.toml", "rnnchat_indrnn/__init__.py", "rnnchat_indrnn/cell.py",
                          "tests/conftest.py", "tests/test_indrnn.py"}


@pytest.fixture
def tutorial_plugin(tmp_path):
    """The tutorial's files, 'installed' into a folder on PYTHONPATH (a dist-info from its pyproject)."""
    project = tmp_path / "rnnchat-indrnn"
    for name, text in FILES.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    meta = tomllib.loads(FILES["pyproject.toml"])["project"]
    info = project / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    eps = meta["entry-points"]["rnnchat"]
    (info / "entry_points.txt").write_text("[rnnchat]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    return project


def run(args, project, **env):
    paths = [str(project), str(Path(__file__).resolve().parents[2])]
    full = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), **env)
    return subprocess.run([sys.executable, *args], cwd=project, capture_output=True, text=True, env=full,
                          timeout=600)


@pytest.mark.slow  # a real pip install and a nested pytest: run by .ci/run with -m slow
def test_the_tutorial_plugin_registers_and_its_tests_pass(tutorial_plugin):
    cells = run(["-m", "rnnchat", "cells"], tutorial_plugin)
    assert cells.returncode == 0 and "indrnn" in cells.stdout and "(indrnn)" in cells.stdout, cells.stderr
    result = run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], tutorial_plugin)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 passed" in result.stdout


def test_importing_the_tutorial_plugin_does_not_import_torch(tutorial_plugin):
    out = run(["-c", "import sys, rnnchat_indrnn; print('torch' in sys.modules)"], tutorial_plugin)
    assert out.stdout.strip() == "False", out.stderr
