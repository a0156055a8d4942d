"""Ctrl+C (SIGINT) and SIGTERM stop `rnnchat serve` cleanly: a running stream gets its final chunk
and [DONE], the engine processes end, the server says "stopped" and exits 0 (no traceback)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.serve.conftest import ROOT, free_port, save_tiny


def children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the engine processes")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_the_streams_then_stops_the_server_and_its_engine_processes(tmp_path, sig):
    save_tiny(tmp_path / "data" / "models" / "tiny.safetensors")
    port = free_port()
    env = dict(os.environ, RNNCHAT_HOME=str(tmp_path), RNNCHAT_DEVICE="cpu", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "rnnchat", "serve", "--model", "tiny", "--port", str(port),
                             "--processes", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("POST", "/v1/completions", body=json.dumps(
                    {"model": "tiny", "prompt": "ab", "max_tokens": 1_000_000, "stream": True}),
                    headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert resp.status == 200
        assert resp.readline().startswith(b"data: ")  # streaming
        engines = children(proc.pid)
        assert len([p for p in engines if alive(p)]) >= 2
        proc.send_signal(sig)
        lines = [line for line in resp.read().decode().splitlines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        assert json.loads(lines[-2][6:])["choices"][0]["finish_reason"] is not None
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert err.strip().splitlines()[-1] == "stopped" and "Traceback" not in err
    deadline = time.monotonic() + 20
    while any(alive(p) for p in engines) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in engines)


def start_and_wait_for_engines(tmp_path):
    """A server subprocess (its own process group) and its engine processes, just spawned."""
    save_tiny(tmp_path / "data" / "models" / "tiny.safetensors")
    env = dict(os.environ, RNNCHAT_HOME=str(tmp_path), RNNCHAT_DEVICE="cpu", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "rnnchat", "serve", "--model", "tiny", "--port", str(free_port()),
                             "--processes", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while len([p for p in children(proc.pid) if alive(p)]) < 3:  # (the resource tracker and two engines)
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.005)
    return proc, children(proc.pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the engine processes")
@pytest.mark.parametrize("after", [0.05, 0.15])
def test_ctrl_c_while_the_engine_processes_start_prints_no_traceback_and_leaves_none(tmp_path, after):
    proc, engines = start_and_wait_for_engines(tmp_path)
    time.sleep(after)  # (the engines' interpreters starting, importing)
    os.killpg(proc.pid, signal.SIGINT)  # as Ctrl+C in a terminal: the whole group, engines importing
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130) and "Traceback" not in err, err
    deadline = time.monotonic() + 20
    while any(alive(p) for p in engines) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in engines)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for the engine processes")
def test_engine_processes_whose_server_was_killed_while_they_started_end_quietly(tmp_path):
    proc, engines = start_and_wait_for_engines(tmp_path)
    time.sleep(0.5)  # (past multiprocessing's own start-up, which reads from the server, into opening the model)
    proc.kill()  # kill -9 of the server: the engines find no one to say ready to
    _out, err = proc.communicate(timeout=120)  # (returns once every engine closed the inherited stderr)
    assert "Traceback" not in err, err
    deadline = time.monotonic() + 20
    while any(alive(p) for p in engines) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in engines)
