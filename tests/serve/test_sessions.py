"""The session store's bounds (LRU, idle time) and the serve package's torch-free import."""

from __future__ import annotations

import subprocess
import sys

from rnnchat.serve.sessions import SessionStore


def test_lru_and_ttl():
    now = [0.0]
    store = SessionStore(max_sessions=2, ttl=10, clock=lambda: now[0])
    store.put("a", "m", "A", True)
    store.put("b", "m", "B", True)
    assert store.get("a").handle == "A"   # a is now the most recently used
    store.put("c", "m", "C", True)
    assert store.get("b") is None and store.get("a") is not None and len(store) == 2
    now[0] = 8
    store.get("c")                        # c used at 8; a idle since 0
    now[0] = 12
    assert store.get("a") is None and store.get("c").handle == "C"


def test_busy_sessions_are_kept():
    now = [0.0]
    store = SessionStore(max_sessions=1, ttl=1, clock=lambda: now[0])
    store.put("a", "m", None, True)
    store.get("a").busy = True
    now[0] = 5
    store.put("b", "m", None, True)
    assert store.get("a") is not None


def test_serve_imports_no_torch():
    code = "import sys, rnnchat.serve.app, rnnchat.commands.serve; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
