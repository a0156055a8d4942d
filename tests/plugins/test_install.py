"""`rnnchat install` / `rnnchat uninstall`: pip run by rnnchat's own interpreter."""

import os
import subprocess
import sys
import sysconfig
import textwrap
import venv

import pytest

from rnnchat import cli
from rnnchat.commands import install as mod


class FakeRun:
    def __init__(self, code=0, pip=True):
        self.calls, self.code, self.pip = [], code, pip

    def __call__(self, cmd, **kw):
        self.calls.append(cmd)
        if cmd[1:] == ["-m", "pip", "--version"]:
            return subprocess.CompletedProcess(cmd, 0 if self.pip else 1, "", "")
        return subprocess.CompletedProcess(cmd, self.code)


@pytest.fixture
def fake(monkeypatch):
    run = FakeRun()
    monkeypatch.setattr(mod.subprocess, "run", run)
    return run


def call(*argv):
    try:
        cli.main(list(argv))
    except SystemExit as exc:
        return exc.code
    return 0


def test_install_runs_pip_of_this_interpreter(fake):
    assert call("install", "rnnchat-mingru", "-U") == 0
    assert fake.calls[-1] == [sys.executable, "-m", "pip", "install", "rnnchat-mingru", "--upgrade"]


def test_install_editable_folder(fake):
    assert call("install", "-e", "plugins/x") == 0
    assert fake.calls[-1] == [sys.executable, "-m", "pip", "install", "-e", "plugins/x"]


def test_uninstall_does_not_ask(fake):
    assert call("uninstall", "rnnchat-mingru") == 0
    assert fake.calls[-1] == [sys.executable, "-m", "pip", "uninstall", "-y", "rnnchat-mingru"]


def test_uninstalling_rnnchat_itself_is_refused(fake, capsys):
    assert call("uninstall", "rnnchat-mingru", "RNNChat") == 1
    assert "refusing to uninstall 'RNNChat'" in capsys.readouterr().err
    assert not [c for c in fake.calls if "uninstall" in c]


# Issue 15, principle 8: the self-protection parses requirements as pip does (PEP 508 + PEP 503).
@pytest.mark.parametrize("arg", [
    "rnnchat==0.1.0", "rnnchat>=0", "Rnnchat[dev]", "RNNCHAT", "rnnchat (>=0)", "rnnchat\t",
    ' rnnchat ; python_version>"3"', "rnnchat @ file:///tmp/rnnchat", "rnnchat@https://example.com/r.whl",
    "rnnchat[dev,test]~=0.1", "rnnchat!=9",
])
def test_rnnchat_under_any_spelling_is_refused(fake, capsys, arg):
    assert call("uninstall", "rnnchat-mingru", arg) == 1
    err = capsys.readouterr().err
    assert "refusing to uninstall" in err and "that is rnnchat" in err and len(err.strip().splitlines()) == 1
    assert not [c for c in fake.calls if "uninstall" in c]


@pytest.mark.parametrize("arg", [
    "-r", "--requirement=reqs.txt", "-rreqs.txt", "./rnnchat", "/site/rnnchat-0.1.0-py3-none-any.whl",
    "https://example.com/rnnchat.tar.gz", "rnnchat.", "rnnchat\n", "rnnсhat",  # Cyrillic 'с'
    "other @ https://example.com/o.whl", 'other ; python_version>"3"', "git+https://x/rnnchat.git",
])
def test_anything_but_a_plain_requirement_is_refused_in_one_line(fake, capsys, arg):
    assert call("uninstall", "--", arg) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: refusing") and len(err.strip().splitlines()) == 1
    assert "\x1b" not in err and not [c for c in fake.calls if "uninstall" in c]


def test_a_requirement_for_another_project_reaches_pip_as_its_name(fake):
    assert call("uninstall", "Rnnchat_MinGRU[x]>=1", "rnn-chat") == 0
    assert fake.calls[-1] == [sys.executable, "-m", "pip", "uninstall", "-y", "rnnchat-mingru", "rnn-chat"]


def test_pip_failure_is_one_line_and_non_zero(fake, capsys):
    fake.code = 3
    assert call("install", "nope") == 1
    err = capsys.readouterr().err
    assert err.strip() == "error: pip install nope failed with status 3 (see its messages above)"


def test_without_pip_uses_uv_for_this_interpreter(fake, monkeypatch):
    fake.pip = False
    monkeypatch.setattr(mod.shutil, "which", lambda name: "/usr/bin/uv" if name == "uv" else None)
    assert call("uninstall", "rnnchat-mingru") == 0
    assert fake.calls[-1] == ["/usr/bin/uv", "pip", "uninstall", "rnnchat-mingru", "--python", sys.executable]


def test_without_pip_or_uv_says_what_to_do(fake, monkeypatch, capsys):
    fake.pip = False
    monkeypatch.setattr(mod.shutil, "which", lambda name: None)
    assert call("install", "x") == 1
    err = capsys.readouterr().err
    assert "pip is not available" in err and "ensurepip" in err and len(err.strip().splitlines()) == 1


def test_install_without_a_package_is_a_usage_error(fake):
    assert call("install") == 2


@pytest.mark.slow  # a real pip install: run by .ci/run with -m slow
def test_real_install_into_the_environment_rnnchat_runs_in(tmp_path):
    """A fresh environment that sees rnnchat (and pip) through a .pth file: install a local plugin
    with that environment's `rnnchat install`, see it in `rnnchat cells`, uninstall it again."""
    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(purelib, "outer.pth"), "w") as fh:
        fh.write(sysconfig.get_paths()["purelib"] + "\n")
    pkg = tmp_path / "rnnchat-hello"
    (pkg / "rnnchat_hello").mkdir(parents=True)
    (pkg / "rnnchat_hello" / "__init__.py").write_text(textwrap.dedent("""
        from rnnchat.plugins import CellSpec, hookimpl

        @hookimpl
        def register_cells(register):
            register(CellSpec("hello", "rnnchat.engine.cells:GRUCell", "a GRU, installed by rnnchat install"))
    """))
    (pkg / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "rnnchat-hello"
        version = "0.1"
        [project.entry-points.rnnchat]
        hello = "rnnchat_hello"
    """))
    env = dict(os.environ, PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1")

    def rnnchat(*args):
        return subprocess.run([str(python), "-m", "rnnchat", *args], capture_output=True, text=True, env=env,
                              timeout=300)

    res = rnnchat("install", str(pkg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert any(p.name.startswith("rnnchat_hello") for p in __import__("pathlib").Path(purelib).iterdir())
    assert "hello" in rnnchat("cells").stdout
    assert "hello" not in subprocess.run([sys.executable, "-m", "rnnchat", "cells"], capture_output=True,
                                         text=True).stdout  # the outer environment is untouched
    res = rnnchat("uninstall", "rnnchat-hello")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "hello" not in rnnchat("cells").stdout
