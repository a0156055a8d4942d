"""The rules of issue 11's "Done when", checked on the source: torch only in the engine (and the
plugin authors' testing kit), no import up a floor, the TUI and session import (and chat over the
fake engine) without torch, no module under rnnchat/ longer than 400 lines, tui/app.py at most 300."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import rnnchat

PACKAGE = Path(rnnchat.__file__).parent
# higher imports lower; core, store and training (torch-free helpers) sit below the engine
FLOORS = {"cli": 6, "commands": 5, "tui": 4, "serve": 4, "session": 3, "engine": 2, "training": 1, "store": 1,
          "core": 0}
TORCH_ALLOWED = ("rnnchat.engine", "rnnchat.testing")  # these packages and the modules in them
KIT_MODULES: set[str] = set()  # torch-using modules outside those packages: none
ROOT_MODULES = {"__init__.py", "__main__.py", "cli.py"}  # the rest lives in the layer folders
MAX_LINES, MAX_APP_LINES = 400, 300


def imports() -> list[tuple[str, str, int]]:
    """(module, imported module, line) for every import statement in the package, lazy ones too."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(("rnnchat", *path.relative_to(PACKAGE).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                out += [(module, a.name, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                out += [(module, node.module, node.lineno)]
    return out


def torch_allowed(module: str) -> bool:
    return module in KIT_MODULES or any(module == p or module.startswith(p + ".") for p in TORCH_ALLOWED)


def test_the_scan_sees_the_package():
    found = imports()
    assert len({m for m, _, _ in found}) > 50
    assert any(m == "rnnchat.engine.model" and name == "torch" for m, name, _ in found)
    assert any(m == "rnnchat.tui.app" for m, _, _ in found) and any(m.startswith("rnnchat.session.") for m, _, _ in found)


def test_torch_is_imported_only_by_the_engine():
    bad = [f"{m}:{line} imports {name}" for m, name, line in imports()
           if name.split(".")[0] == "torch" and not torch_allowed(m)]
    assert bad == []


def test_the_torch_rule_is_a_package_rule_not_a_name_prefix():
    assert torch_allowed("rnnchat.engine") and torch_allowed("rnnchat.engine.model")
    assert torch_allowed("rnnchat.testing.cells") and torch_allowed("rnnchat.testing.probe")
    assert not torch_allowed("rnnchat.engine_helpers") and not torch_allowed("rnnchat.testing_other")
    assert not torch_allowed("rnnchat.session.chat") and not torch_allowed("rnnchat.tui.app")


def test_no_module_is_too_long():
    lengths = {str(p.relative_to(PACKAGE.parent)): len(p.read_text(encoding="utf-8").splitlines())
               for p in sorted(PACKAGE.rglob("*.py"))}
    assert len(lengths) > 50
    assert {p: n for p, n in lengths.items() if n > MAX_LINES} == {}
    assert lengths[str(Path("rnnchat", "tui", "app.py"))] <= MAX_APP_LINES


def test_no_import_up_a_floor():
    bad = []
    for m, name, line in imports():
        mine, theirs = m.split(".")[1:2], name.split(".")[1:2] if name.startswith("rnnchat.") else []
        if mine and theirs and FLOORS.get(theirs[0], 0) > FLOORS.get(mine[0], 99):
            bad.append(f"{m}:{line} imports {name}")
    assert bad == []


def test_tui_and_session_import_and_chat_without_torch():
    modules = sorted({m for m, _, _ in imports() if m.startswith(("rnnchat.tui", "rnnchat.session"))})
    code = ("import sys, importlib\n"
            f"for m in {modules!r}:\n"
            "    importlib.import_module(m)\n"
            "import rnnchat.cli\n"
            "from rnnchat.tui.app import RnnchatApp\n"
            "from rnnchat.session.chat import ChatSession\n"
            "from rnnchat.session.fake_engine import FakeEngine\n"
            "RnnchatApp()\n"
            "s = ChatSession(engine=FakeEngine.opener(), autosave=False)\n"
            "s.load()\n"
            "assert ''.join(c.text for c in s.send('Hello')).startswith('ROMEO')\n"
            "s.read_ahead('Again'); s.read_ahead_done(10); s.rewind(0); s.close()\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "print('torch modules:', bad[:5])\n"
            "sys.exit(1 if bad else 0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_package_root_holds_only_the_entry_points():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in ROOT_MODULES)
    assert loose == [], "put new modules in the layer folder they belong to (core, store, training, ...)"


def test_the_foundations_import_no_layer_above_them():
    bad = [f"{m}:{line} imports {name}" for m, name, line in imports()
           if m.split(".")[1:2] in (["core"], ["store"], ["training"]) and name.startswith("rnnchat.")
           and name.split(".")[1] in ("engine", "session", "tui", "serve", "commands", "cli")]
    assert bad == []
