"""core/heap.py: what a long-running process keeps is left out of later garbage collections
(``rnnchat generate`` and ``rnnchat serve`` freeze once their model is loaded). In subprocesses:
freezing is for the whole process."""

from __future__ import annotations

import subprocess
import sys


def run_python(code: str, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


def test_freeze_moves_the_live_objects_out_of_collections_and_later_garbage_is_still_collected():
    code = ("import gc, weakref\n"
            "from rnnchat.core import heap\n"
            "kept = [[i] for i in range(50_000)]\n"
            "n = heap.freeze()\n"
            "assert n == gc.get_freeze_count() and n > 50_000, n\n"
            "class Node:\n    pass\n"
            "a, b = Node(), Node(); a.b, b.a = b, a\n"  # a cycle made after the freeze
            "probe = weakref.ref(a); del a, b\n"
            "gc.collect()\n"
            "assert probe() is None  # still collected\n"
            "print('ok')\n")
    r = run_python(code)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_generate_freezes_once_its_model_is_loaded(make_checkpoint):
    path = make_checkpoint()
    code = ("import gc, sys\n"
            "from rnnchat.cli import _run\n"
            "assert gc.get_freeze_count() == 0\n"
            f"code = _run(['generate', 'ab', '--model', {str(path)!r}, '-n', '5', '--seed', '1'])\n"
            "print('\\nfrozen', code, gc.get_freeze_count())\n")
    r = run_python(code)
    assert r.returncode == 0, r.stderr
    _, code, frozen = r.stdout.strip().splitlines()[-1].split()
    assert code == "0" and int(frozen) > 10_000
