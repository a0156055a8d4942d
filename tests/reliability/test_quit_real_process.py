"""The real app in a pseudo-terminal: ctrl+q during model loading, and right after sending a
message (while the reply streams), ends the process within 2 s of the key, with no traceback.

Only the exit is timed (a bounded hang limit), never how fast the model generates.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a Linux pty")

QUIT_LIMIT = 2.0
START_LIMIT = 60.0  # the first frame (importing Textual on a loaded box): not what is measured


class PtyApp:
    def __init__(self, args: list[str], env: dict) -> None:
        import fcntl
        import struct
        import termios

        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        self.proc = subprocess.Popen([sys.executable, "-m", "rnnchat", *args], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, close_fds=True, start_new_session=True)
        os.close(slave)
        self.output = b""

    def read(self, timeout: float) -> None:
        r, _, _ = select.select([self.master], [], [], timeout)
        if r:
            try:
                self.output += os.read(self.master, 65536)
            except OSError:  # EIO: the child closed the terminal
                time.sleep(timeout)

    def wait_for(self, needle: bytes, limit: float) -> None:
        end = time.monotonic() + limit
        while needle not in self.output and time.monotonic() < end and self.proc.poll() is None:
            self.read(0.05)
        assert needle in self.output, f"{needle!r} never appeared: {self.text()[-2000:]}"

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def exit_time(self, limit: float) -> float | None:
        """Seconds until the process ended (reading its output meanwhile), or None past ``limit``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit + 3:
            if self.proc.poll() is not None:
                elapsed = time.monotonic() - t0
                self.read(0.05)
                return elapsed
            self.read(0.02)
        return None

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        os.close(self.master)


@pytest.fixture
def app_env(rnnchat_home):
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30", PYTHONUNBUFFERED="1")
    env.pop("TEXTUAL", None)
    return env


@pytest.fixture
def tiny(make_checkpoint):
    return make_checkpoint("lstm", chat={"template": "YOU:\n{text}\n\n", "stop": ["\n\n\n\n"]})


def run(args, env):
    app = PtyApp(args, env)
    try:
        yield app
    finally:
        app.close()


def test_ctrl_q_during_model_loading_exits_at_once(tiny, app_env):
    for app in run(["chat", "--model", str(tiny)], app_env):
        app.wait_for(b"Loading", START_LIMIT)  # the first frame is up; torch imports in the worker
        app.send(b"\x11")
        elapsed = app.exit_time(QUIT_LIMIT)
        assert elapsed is not None and elapsed < QUIT_LIMIT, f"still running {QUIT_LIMIT} s after ctrl+q"
        assert "Traceback" not in app.text()
        assert app.proc.returncode == 0


@pytest.mark.slow  # real processes: 3-4 s
def test_ctrl_q_while_a_reply_streams_exits_at_once(tiny, app_env, rnnchat_home):
    from rnnchat.core import paths

    # a long reply (the stop sequence is unlikely from this untrained model), so ctrl+q lands during it
    paths.settings_file().parent.mkdir(parents=True, exist_ok=True)
    paths.settings_file().write_text(json.dumps({"max_chars": 200_000, "temperature": 1.0}), encoding="utf-8")
    for app in run(["chat", "--model", str(tiny)], app_env):
        app.wait_for(b"is ready", START_LIMIT)
        app.send(b"Speak at length")
        time.sleep(0.2)
        app.send(b"\r")
        app.wait_for(b"You", 20)  # the message is in the transcript: the reply has started
        time.sleep(0.3)
        app.send(b"\x11")
        elapsed = app.exit_time(QUIT_LIMIT)
        assert elapsed is not None and elapsed < QUIT_LIMIT, f"still running {QUIT_LIMIT} s after ctrl+q"
        assert "Traceback" not in app.text()
        assert app.proc.returncode == 0
