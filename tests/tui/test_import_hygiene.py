"""The TUI and the session layer never import torch at import time (the screen paints first)."""

from __future__ import annotations

import subprocess
import sys


def test_tui_and_session_do_not_import_torch():
    code = ("import sys\n"
            "import rnnchat.tui.app, rnnchat.tui.screens, rnnchat.session, rnnchat.session.fake\n"
            "import rnnchat.commands.chat\n"
            "app = rnnchat.tui.app.RnnchatApp()\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "print('torch modules:', bad[:5])\n"
            "sys.exit(1 if bad else 0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
