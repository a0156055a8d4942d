"""Issue 15, principle 5: plugins cannot take the host down or hang it silently.

Any BaseException from plugin code is that plugin's error (KeyboardInterrupt names the plugin and
ends the command); slow plugin code is named on stderr while it runs; a plugin cell that fails its
first check or raises later is named in one line; a plugin with any failed hook is listed as failed
and everything it registered is dropped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rnnchat.core.errors import PluginError
from rnnchat.plugins import guard
from rnnchat.plugins.manager import PluginHost
from tests import fakeplugins as fp
from tests.conftest import run_cli
from tests.test_plugins import _env, site  # noqa: F401 - site: the fixture, a folder on sys.path for plugins


def _error_lines(stderr: str) -> list[str]:
    """stderr without the host's "still importing" notices (a plugin importing torch is slow under load)."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("rnnchat: still ")]


def _listing(site):
    r = run_cli("plugins", "--json", env=_env(site))
    assert r.returncode == 0, r.stderr
    return {p["name"]: p for p in json.loads(r.stdout)}


RAISE_AT_IMPORT = "raise {exc}\n"
RAISE_IN_HOOK = """
    from rnnchat.plugins import CellSpec, hookimpl

    @hookimpl
    def register_cells(register):
        register(CellSpec("early", "rnnchat.engine.cells:GRUCell"))
        raise {exc}
"""
BASE_EXCEPTIONS = [
    ("SystemExit(3)", "SystemExit: 3"),
    ("SystemExit('bye')", "SystemExit: bye"),
    ("SystemExit()", "SystemExit"),
    ("GeneratorExit()", "GeneratorExit"),
    ("type('Odd', (BaseException,), {})('odd base')", "Odd: odd base"),
    ("StopIteration()", "StopIteration"),
    ("RecursionError('deep')", "RecursionError: deep"),
    ("MemoryError()", "MemoryError"),
]


@pytest.mark.parametrize("where", [RAISE_AT_IMPORT, RAISE_IN_HOOK], ids=["import", "hook"])
@pytest.mark.parametrize("exc,shown", BASE_EXCEPTIONS, ids=[e[1].split(":")[0] for e in BASE_EXCEPTIONS])
def test_any_base_exception_is_that_plugins_error(site, where, exc, shown):
    fp.make_plugin(site, "hostile", where.format(exc=exc))
    fp.make_plugin(site, "good", fp.GOOD_CELL)
    h = PluginHost().load()
    info = h.plugins["hostile"]
    assert not info.loaded and info.registered == {} and shown in " ".join(info.errors)
    assert "early" not in h.cells and {"lstm", "twin"} <= set(h.cells)


def test_sys_exit_at_import_does_not_end_any_command(site):
    fp.make_plugin(site, "quitter", "import sys\nsys.exit(3)\n")
    r = run_cli("plugins", env=_env(site))
    assert r.returncode == 0, r.stderr
    assert "quitter 1.0 [FAILED]" in r.stdout and "error: failed to load: SystemExit: 3" in r.stdout
    assert "rnnchat.cells" in r.stdout


def test_keyboard_interrupt_at_import_names_the_plugin(site):
    fp.make_plugin(site, "ctrlc", "raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        PluginHost().load()
    r = run_cli("cells", env=_env(site))
    assert r.returncode == 130 and "interrupted while importing plugin 'ctrlc'" in r.stderr
    assert "Traceback" not in r.stderr


SLEEPY_IMPORT = "import time\ntime.sleep(1.5)\n"
SLEEPY_HOOK = """
    import time
    from rnnchat.plugins import hookimpl

    @hookimpl
    def register_commands(cli):
        time.sleep(1.5)
"""


@pytest.mark.parametrize("source,doing", [(SLEEPY_IMPORT, "importing"),
                                          (SLEEPY_HOOK, "adding the commands of")])
def test_help_names_a_slow_plugin_while_it_runs(site, source, doing):
    """`rnnchat --help` with a sleeping plugin (the notice comes after 0.3 s here, 5 s for real)."""
    fp.make_plugin(site, "sleepy", source)
    code = ("import rnnchat.plugins.guard as g; g.SLOW_NOTICE_S = 0.3; "
            "from rnnchat.cli import main; main(['--help'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **_env(site)))
    assert r.returncode == 0 and "Usage:" in r.stdout
    assert f"rnnchat: still {doing} plugin 'sleepy' (0.3 s)" in r.stderr


def test_the_watchdog_is_quiet_for_quick_code_and_escapes_names(capsys, monkeypatch):
    monkeypatch.setattr(guard, "SLOW_NOTICE_S", 0.05)
    assert guard.run_plugin_code("quick", "importing", lambda: 7) == 7
    guard.run_plugin_code("evil\x1b]0;title\x07", "importing", __import__("time").sleep, 0.3)
    err = capsys.readouterr().err
    assert "quick" not in err and "\x1b" not in err and "evil\\x1b]0;title\\x07" in err


CELL_PLUGIN = """
    import torch
    from rnnchat.engine.cells import GRUCell
    from rnnchat.plugins import CellSpec, CheckpointSpec, hookimpl

    class Odd(GRUCell):
        calls = 0
        {body}

    @hookimpl
    def register_cells(register):
        register(CellSpec("odd", Odd, "a cell that misbehaves"))

    @hookimpl
    def register_checkpoints(register):
        register(CheckpointSpec("odd-model", "/nonexistent/odd.safetensors"))
"""
BAD_CELLS = {
    "wide-forward": ("def forward(self, x, state):\n"
                     "            y, s = super().forward(x, state)\n"
                     "            return torch.cat([y, y[..., :1]], -1), s", "forward() returned an output of shape"),
    "input-width": ("def step(self, x, h):\n"
                    "            return x, super().step(x, h)[1]", "step() returned an output of shape [2, 5]"),
    "raises": ("def forward(self, x, state):\n"
               "            raise RuntimeError('exploded in forward')", "RuntimeError: exploded in forward"),
    "exits": ("def step(self, x, h):\n"
              "            raise SystemExit(3)", "SystemExit: 3"),
    "one-value": ("def forward(self, x, state):\n"
                  "            return super().forward(x, state)[0]", "must return (output, state)"),
    "string-state": ("def initial_state(self, batch):\n"
                     "            return 'state'", "a state is a tensor or a tuple of tensors"),
    "float64": ("def step(self, x, h):\n"
                "            y, s = super().step(x, h)\n"
                "            return y.double(), s", "torch.float64"),
    "bad-init": ("def __init__(self, i, h):\n"
                 "            raise ValueError('no \\x1b[31m colour')", "ValueError: no \\x1b[31m colour"),
}


@pytest.mark.parametrize("kind", list(BAD_CELLS))
def test_a_cell_that_fails_its_first_check_drops_its_plugin(site, kind):
    body, error = BAD_CELLS[kind]
    fp.make_plugin(site, "odd", CELL_PLUGIN.format(body=body))
    h = PluginHost().load()
    assert "odd" in h.cells
    h.verify_cells()
    info = h.plugins["odd"]
    assert not info.loaded and "cell 'odd' is not a proper cell" in info.errors[0] and error in info.errors[0]
    assert "odd" not in h.cells and "odd-model" not in h.checkpoints and "\x1b" not in info.errors[0]
    with pytest.raises(PluginError, match="cell 'odd' cannot be used: its plugin odd failed"):
        h.cell("odd")


def test_training_with_a_wrong_width_cell_is_one_line_naming_the_plugin(site, tiny_corpus):
    fp.make_plugin(site, "odd", CELL_PLUGIN.format(body=BAD_CELLS["wide-forward"][0]))
    r = run_cli("train", str(tiny_corpus), "--cell", "odd", "--steps", "2", "--name", "w", env=_env(site))
    assert r.returncode == 1 and "Traceback" not in r.stderr and len(_error_lines(r.stderr)) == 1
    assert "its plugin odd failed" in r.stderr and "shape" in r.stderr


@pytest.mark.parametrize("error,line", [
    ("RuntimeError('tired after 4 steps')", "error: plugin odd failed: RuntimeError: tired after 4 steps"),
    ("SystemExit(3)", "error: plugin odd failed: SystemExit: 3"),  # on main: status 3
])
def test_a_cell_that_fails_later_in_generation_is_named(site, make_checkpoint, error, line):
    """Passes its first checks, then raises on the 5th step: one line naming the plugin, status 1."""
    body = ("def step(self, x, h):\n"
            "            Odd.calls += 1\n"
            "            if Odd.calls > 4:\n"
            f"                raise {error}\n"
            "            return super().step(x, h)")
    fp.make_plugin(site, "odd", CELL_PLUGIN.format(body=body))
    path = make_checkpoint(cell="odd", name="odd", layers=1)
    r = run_cli("generate", "-m", str(path), "-n", "50", "--seed", "1", "hi", env=_env(site))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert _error_lines(r.stderr) == [line]


def test_a_plugin_command_keeps_its_own_exit_status(site):
    source = fp.COMMAND.replace('click.echo("hello from a plugin")', 'raise SystemExit(4)')
    fp.make_plugin(site, "cmd", source)
    r = run_cli("hello", env=_env(site))
    assert r.returncode == 4 and "error" not in r.stderr


def test_a_checkpoint_whose_cell_failed_says_so(site, make_checkpoint):
    good = "def __init__(self, i, h, **kw):\n            super().__init__(i, h, **kw)"
    fp.make_plugin(site, "odd", CELL_PLUGIN.format(body=good))
    path = make_checkpoint(cell="odd", name="odd", layers=1)
    fp.make_plugin(site, "odd2", CELL_PLUGIN.format(body=BAD_CELLS["raises"][0]),
                   dist="rnnchat-odd")
    r = run_cli("generate", "-m", str(path), "-n", "5", "hi", env=dict(_env(site), RNNCHAT_LOAD_PLUGINS="odd2"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "its plugin odd2 failed" in r.stderr and "exploded in forward" in r.stderr


FAILING_COMMANDS = """
    from rnnchat.plugins import CellSpec, hookimpl

    @hookimpl
    def register_cells(register):
        register(CellSpec("cmdcell", "rnnchat.engine.cells:GRUCell"))

    @hookimpl
    def register_commands(cli):
        {body}
"""


@pytest.mark.parametrize("body,error", [
    ("raise RuntimeError('no commands today')", "RuntimeError: no commands today"),
    ("raise SystemExit(3)", "SystemExit: 3"),
    ("raise GeneratorExit", "GeneratorExit"),
    ("return 'surprise'", "returned str"),
    ("cli.commands.clear()", "refused to replace existing command(s)"),
    ("cli.commands['hijack'] = cli.commands.pop('models')", "refused to replace existing command(s): models"),
])
def test_a_failed_register_commands_drops_the_plugin(site, body, error):
    import click

    from rnnchat.cli import cli

    fp.make_plugin(site, "cmdfail", FAILING_COMMANDS.format(body=body))
    group = click.Group("rnnchat", commands=dict(cli.commands))
    h = PluginHost().load()
    assert "cmdcell" in h.cells
    h.add_commands(group)
    info = h.plugins["cmdfail"]
    assert not info.loaded and info.registered == {} and error in " ".join(info.errors)
    assert "cmdcell" not in h.cells and group.commands == cli.commands  # nothing half-added or lost


def test_a_failed_register_commands_is_listed_as_failed(site):
    fp.make_plugin(site, "cmdfail", FAILING_COMMANDS.format(body="raise RuntimeError('no commands today')"))
    row = _listing(site)["cmdfail"]
    assert row["loaded"] is False and row["registered"] == {}
    assert row["errors"] == ["register_commands failed: RuntimeError: no commands today"]


def test_the_app_names_the_plugin_of_an_error_too(site):
    """The chat app shows a failed reply with ``one_line``: a plugin's error is prefixed with its name."""
    from rnnchat.plugins import manager
    from rnnchat.tui.messages import one_line

    fp.make_plugin(site, "odd", CELL_PLUGIN.format(body="def step(self, x, h):\n            raise KeyError('h')"))
    manager._HOST = PluginHost().load()
    cell = manager._HOST.cells["odd"].load()(2, 3)
    try:
        cell.step(None, None)
    except KeyError as exc:
        assert one_line(exc) == "plugin odd failed: KeyError: 'h'"
    assert one_line(RuntimeError("ours")) == "RuntimeError: ours"


def test_a_cell_wrong_only_at_the_models_sizes_is_named_when_the_model_is_built(site, make_checkpoint):
    """Passes the tiny check (hidden 4), returns one column too many at hidden 8: named at the build."""
    body = ("def forward(self, x, state):\n"
            "            y, s = super().forward(x, state)\n"
            "            return (torch.cat([y, y[..., :1]], -1) if y.shape[-1] == 8 else y), s")
    fp.make_plugin(site, "odd", CELL_PLUGIN.format(body=body))
    with pytest.raises(PluginError, match=r"cell 'odd': forward\(\) returned an output of shape \[1, 1, 9\].*"
                                          r"\(plugin odd, at the model's sizes\)"):
        make_checkpoint(cell="odd", name="odd", layers=1)


@pytest.mark.slow  # real processes: 3-4 s
def test_a_thread_a_plugin_leaves_running_does_not_keep_rnnchat_from_exiting(site):
    source = """
        import threading
        threading.Thread(target=threading.Event().wait, name="forever", daemon=False).start()
    """
    fp.make_plugin(site, "threads", source)
    r = run_cli("plugins", env=_env(site), timeout=60)  # on main: waits for the thread for ever
    assert r.returncode == 0 and "threads 1.0 [ok]" in r.stdout
    assert "rnnchat: plugin 'threads' left its thread 'forever' running; not waiting for it" in r.stderr
