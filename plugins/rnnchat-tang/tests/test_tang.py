"""The tang-poems model: registered, small, passes the checkpoint contract, writes poems from titles."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rnnchat_tang
from rnnchat.testing import check_checkpoint

REGULAR = re.compile(r"^(?:[^，。\s]{5}，[^，。\s]{5}。|[^，。\s]{7}，[^，。\s]{7}。)$")


def rnnchat(*args, env=None):
    return subprocess.run([sys.executable, "-m", "rnnchat", *args], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), timeout=300, encoding="utf-8")


def test_the_package_is_at_most_15_mb():
    package = Path(rnnchat_tang.__file__).parent
    size = sum(p.stat().st_size for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert rnnchat_tang.MODEL.is_file() and size <= 15 * 1024 * 1024


def test_registered_and_listed():
    out = rnnchat("models", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["tang-poems"]["cell"] == "lstm" and rows["tang-poems"]["plugin"] == "tang"


def test_metadata_frames_a_title_and_stops_at_the_end_of_the_poem():
    meta = json.loads(rnnchat("inspect", "tang-poems", "--json").stdout)
    assert meta["chat"] == {"template": "\n《{text}》", "stop": ["\n\n"]}
    assert len(meta["vocab"]) <= 4000 and "\ufffd" in meta["vocab"]  # capped; rare characters share one token
    assert meta["storage_dtype"] == "float16" and meta["val_loss"] < 6.0


def test_checkpoint_contract():
    check_checkpoint("tang-poems")


def test_a_title_gives_a_poem():
    out = rnnchat("generate", "\n《春望》", "-m", "tang-poems", "--seed", "1", "-t", "0.8", "--stop", "\\n\\n",
                  "-n", "300")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.split("\n")[1:] if line.strip()]
    assert lines and sum(bool(REGULAR.match(line)) for line in lines) >= len(lines) // 2, out.stdout


def test_importing_the_plugin_does_not_import_torch():
    code = "import sys, rnnchat_tang; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
