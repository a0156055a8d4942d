"""Issue 11 item 5 / issue 15 principle 1: one module reads and checks every RNNCHAT_* variable."""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

import pytest

from rnnchat.core import env

from rnnchat.core import paths
from rnnchat.core.errors import SettingError

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rnnchat"
# Test hooks still read by the training loop; the training work removes them (issue 11 item 5).
NOT_YET_MOVED = {"RNNCHAT_TEST_FAIL_RANK", "RNNCHAT_TEST_CHECKSUM_DIR"}


def environment_reads(source: str) -> list[tuple[int, str]]:
    """(line, variable) for every read of an RNNCHAT_* variable from the environment in ``source``:
    ``os.environ.get/pop/setdefault/[]``, ``"X" in os.environ``, ``os.getenv``, keys given
    literally or through a module-level constant."""
    tree = ast.parse(source)
    constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                 for t in n.targets if isinstance(t, ast.Name)}

    def is_environ(node) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or \
               (isinstance(node, ast.Name) and node.id == "environ")

    def key(node) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        if isinstance(node, ast.JoinedStr):
            return "".join(v.value for v in node.values if isinstance(v, ast.Constant)) + "*"
        return None

    found = []
    for node in ast.walk(tree):
        keys = []
        if isinstance(node, ast.Call) and node.args:
            f = node.func
            if isinstance(f, ast.Attribute) and f.attr in ("get", "pop", "setdefault") and is_environ(f.value):
                keys.append(node.args[0])
            if (isinstance(f, ast.Attribute) and f.attr == "getenv") or (isinstance(f, ast.Name) and f.id == "getenv"):
                keys.append(node.args[0])
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            keys.append(node.slice)
        if isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            keys.append(node.left)
        for k in keys:
            name = key(k)
            if name and name.startswith("RNNCHAT_"):
                found.append((node.lineno, name))
    return found


def test_the_scanner_finds_every_form_of_read():
    source = ('import os\nfrom os import environ, getenv\nV = "RNNCHAT_X"\n'
              'a = os.environ.get("RNNCHAT_A")\nb = os.environ["RNNCHAT_B"]\nc = "RNNCHAT_C" in os.environ\n'
              'd = os.getenv("RNNCHAT_D", "")\ne = environ.get(V)\nf = getenv(f"RNNCHAT_{a}")\n'
              'g = os.environ.get("HOME")\n')
    assert sorted(n for _, n in environment_reads(source)) == ["RNNCHAT_*", "RNNCHAT_A", "RNNCHAT_B", "RNNCHAT_C",
                                                               "RNNCHAT_D", "RNNCHAT_X"]


def test_only_env_py_reads_rnnchat_variables():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "core" / "env.py":
            continue
        for line, name in environment_reads(path.read_text(encoding="utf-8")):
            if name not in NOT_YET_MOVED:
                offenders.append(f"{path.relative_to(ROOT)}:{line} reads {name}")
    assert offenders == [], "read RNNCHAT_* variables through rnnchat.core.env:\n" + "\n".join(offenders)


def test_env_py_imports_no_torch():
    tree = ast.parse((PACKAGE / "core" / "env.py").read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | \
               {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.split(".")[0] in ("torch", "numpy") for m in imported)


def test_every_variable_is_in_the_docs_table_and_nothing_else_is():
    source = (PACKAGE / "core" / "env.py").read_text(encoding="utf-8")
    read = set(re.findall(r'"(RNNCHAT_[A-Z0-9_]+)"', source))
    table = set(re.findall(r"^\| `(RNNCHAT_[A-Z0-9_]+)` \|", (ROOT / "docs" / "environment.md").read_text(), re.M))
    assert read == set(env.VARIABLES)
    assert read - table == set(), "add these to docs/environment.md"
    assert table - read == set(), "documented but read nowhere"
    assert "docs/environment.md" in (ROOT / "README.md").read_text()


def test_documented_but_unread_variables_are_gone():
    texts = [p.read_text(encoding="utf-8") for p in [*PACKAGE.rglob("*.py"), *(ROOT / "docs").glob("*.md"),
                                                     ROOT / "README.md"]]
    assert not any("RNNCHAT_FAKE_SESSION" in t for t in texts)


@pytest.mark.parametrize("value,expected", [
    ("1", True), ("true", True), ("TRUE", True), (" Yes ", True), ("on", True), ("On", True),
    ("0", False), ("false", False), ("No", False), ("OFF", False), ("off", False), ("", None),
])
def test_one_boolean_rule(monkeypatch, value, expected):
    for name, default in (("RNNCHAT_FAST", True), ("RNNCHAT_STRICT_PLUGINS", False)):
        monkeypatch.setenv(name, value)
        assert env.flag(name, default) is (default if expected is None else expected)
    assert env.fast() is (True if expected is None else expected)
    assert env.strict_plugins() is (False if expected is None else expected)


@pytest.mark.parametrize("value", ["maybe", "2", "enabled", "y", "t", "-1", "o n", "\x1b[31m"])
def test_anything_else_is_one_line_naming_the_variable(monkeypatch, value):
    for name, read in (("RNNCHAT_FAST", env.fast), ("RNNCHAT_STRICT_PLUGINS", env.strict_plugins)):
        monkeypatch.setenv(name, value)
        with pytest.raises(SettingError) as err:
            read()
        msg = str(err.value)
        assert msg.startswith(f"{name} must be one of 1, true, yes, on (on) or 0, false, no, off (off)")
        assert "\n" not in msg and "\x1b" not in msg


def test_strict_plugins_off_means_off(monkeypatch, tmp_path):
    """On main, RNNCHAT_STRICT_PLUGINS=off turned strict mode on."""
    from rnnchat.plugins.manager import PluginHost
    from tests import fakeplugins as fp

    monkeypatch.syspath_prepend(str(tmp_path))
    fp.make_plugin(tmp_path, "broken", fp.IMPORT_ERROR)
    monkeypatch.setenv("RNNCHAT_STRICT_PLUGINS", "off")
    assert not PluginHost().load().plugins["broken"].loaded  # recorded, not raised


BAD = [
    ("RNNCHAT_THREADS", "abc"), ("RNNCHAT_THREADS", "-1"), ("RNNCHAT_THREADS", "0"), ("RNNCHAT_THREADS", "100000"),
    ("RNNCHAT_THREADS", "1.5"), ("RNNCHAT_THREADS", "1e3"), ("RNNCHAT_THREADS", "9" * 40),
    ("RNNCHAT_BLAS_THREADS", "two"), ("RNNCHAT_BLAS_THREADS", "100000"),
    ("RNNCHAT_DIST_TIMEOUT", "soon"), ("RNNCHAT_DIST_TIMEOUT", "0"), ("RNNCHAT_DIST_TIMEOUT", "nan"),
    ("RNNCHAT_DIST_TIMEOUT", "inf"), ("RNNCHAT_DIST_TIMEOUT", "1e300"), ("RNNCHAT_DIST_TIMEOUT", "-5"),
    ("RNNCHAT_PROMPT_PRECISION", "fp8"), ("RNNCHAT_EXIT_AFTER", "later"), ("RNNCHAT_INT8_KERNEL", "mkl"),
    ("RNNCHAT_CORPUS_MIRROR", "ftp://mirror"), ("RNNCHAT_CORPUS_MIRROR", "file:///etc"),
    ("RNNCHAT_DEVICE", "cuda:abc"), ("RNNCHAT_DEVICE", "cpu\x00"), ("RNNCHAT_HOME", "/tmp/a\x00b"),
]
READERS = {"RNNCHAT_THREADS": env.threads, "RNNCHAT_BLAS_THREADS": env.blas_threads,
           "RNNCHAT_DIST_TIMEOUT": env.dist_timeout, "RNNCHAT_PROMPT_PRECISION": env.prompt_precision,
           "RNNCHAT_EXIT_AFTER": env.exit_after, "RNNCHAT_CORPUS_MIRROR": env.corpus_mirror,
           "RNNCHAT_DEVICE": env.device, "RNNCHAT_HOME": env.home, "RNNCHAT_INT8_KERNEL": env.int8_kernel}


@pytest.mark.parametrize("name,value", BAD)
def test_bad_values_are_one_line_errors_naming_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value) if "\x00" not in value else monkeypatch.setattr(
        os, "environ", dict(os.environ, **{name: value}))
    with pytest.raises(SettingError) as err:
        READERS[name]()
    msg = str(err.value)
    assert msg.startswith(f"{name} must be ") and "\n" not in msg and "\x00" not in msg


@pytest.mark.parametrize("name,value,expected", [
    ("RNNCHAT_THREADS", " 2 ", 2), ("RNNCHAT_THREADS", str(env.MAX_THREADS), env.MAX_THREADS),
    ("RNNCHAT_BLAS_THREADS", "1", 1), ("RNNCHAT_DIST_TIMEOUT", "0.5", 0.5),
    ("RNNCHAT_PROMPT_PRECISION", "BF16", "bf16"), ("RNNCHAT_EXIT_AFTER", "ready", "ready"),
    ("RNNCHAT_CORPUS_MIRROR", "https://m.example/c", "https://m.example/c"), ("RNNCHAT_DEVICE", "CUDA:1", "cuda:1"),
    ("RNNCHAT_THREADS", "", None), ("RNNCHAT_DIST_TIMEOUT", "", 120.0),
    ("RNNCHAT_INT8_KERNEL", "FBGEMM", "fbgemm"), ("RNNCHAT_INT8_KERNEL", "", None),
])
def test_good_values_are_typed(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    assert READERS[name]() == expected


def test_load_plugins_list(monkeypatch):
    monkeypatch.delenv("RNNCHAT_LOAD_PLUGINS", raising=False)
    assert env.load_plugins() is None
    monkeypatch.setenv("RNNCHAT_LOAD_PLUGINS", " a, b ,,")
    assert env.load_plugins() == {"a", "b"}
    monkeypatch.setenv("RNNCHAT_LOAD_PLUGINS", "")
    assert env.load_plugins() == set()


@pytest.mark.parametrize("value", ["abc", "100000"])
def test_threads_setting_is_one_line_in_the_cli(make_checkpoint, value):
    """On main: a ValueError traceback for abc, a segfault for 100000."""
    r = run_cli("generate", "-m", str(make_checkpoint("lstm")), "-n", "3", "Cat", env={"RNNCHAT_THREADS": value})
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == f"error: RNNCHAT_THREADS must be a whole number from 1 to {env.MAX_THREADS}, " \
                               f"not {value!r}"


def _unwritable_folder(tmp_path) -> Path:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root writes anyway: use a folder the kernel refuses
        folder = Path("/proc/1")
        if sys.platform != "linux" or os.access(folder, os.W_OK):
            pytest.skip("no folder here is read-only for this user")
    return folder


@pytest.mark.parametrize("case", ["file", "under-a-file", "read-only", "under-read-only", "data-is-a-file"])
def test_an_unusable_home_is_one_line(tmp_path, monkeypatch, case):
    afile = tmp_path / "afile"
    afile.write_text("x")
    home = {"file": lambda: afile, "under-a-file": lambda: afile / "home",
            "read-only": lambda: _unwritable_folder(tmp_path),
            "under-read-only": lambda: _unwritable_folder(tmp_path) / "home",
            "data-is-a-file": lambda: afile.parent}[case]()
    if case == "data-is-a-file":
        (tmp_path / "data").write_text("x")
    monkeypatch.setenv("RNNCHAT_HOME", str(home))
    with pytest.raises(SettingError, match="cannot be used: .* point it at a folder you can write to"):
        paths.models_dir()
    if case in ("file", "read-only"):  # through the CLI: even --help says it, in one line
        r = run_cli("models", env={"RNNCHAT_HOME": str(home)})
        assert r.returncode == 1 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert r.stderr.startswith("error: RNNCHAT_HOME")


def test_a_missing_home_is_created_on_use(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNCHAT_HOME", str(tmp_path / "new" / "home"))
    assert paths.models_dir() == tmp_path / "new" / "home" / "data" / "models"


def test_a_bad_int8_kernel_value_stops_the_cli_instead_of_falling_back_to_fp32(make_checkpoint):
    path = make_checkpoint("lstm", weights_cost={"int8": 0.001})  # auto means int8 for this model
    r = run_cli("generate", "ab", "-m", str(path), "-n", "5", env={"RNNCHAT_INT8_KERNEL": "mkl"})
    assert r.returncode == 1 and "RNNCHAT_INT8_KERNEL must be" in r.stderr and "Traceback" not in r.stderr
