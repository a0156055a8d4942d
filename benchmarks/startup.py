"""Start-up times and memory of the real commands, each launched as a fresh process.

* ``rnnchat --help``: wall time from launch to exit (target <= 0.25 s), and which
  heavy modules it imported (``python -X importtime``: torch must not be among them);
* the chat app's first frame and the model ready to answer, as the app itself reports
  them with ``RNNCHAT_EXIT_AFTER=first-frame|ready`` (``rnnchat-startup <event> <s>`` on
  stderr, seconds since the process started; targets <= 0.8 s and <= 3 s), run in a
  pseudo-terminal like a user's;
* peak resident memory (``ru_maxrss``) of the app at "ready", and of a chat-length run of
  the engine on the same model (20 turns of 500 characters) in a child process
  (target < 600 MB).

    .venv/bin/python benchmarks/startup.py [--repeats 5] [--model NAME_OR_PATH]

Medians of the repeats. Run on a quiet machine: start-up is mostly reading files and
importing modules, which other processes slow down.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import statistics
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
RNNCHAT = str(VENV_BIN / "rnnchat") if (VENV_BIN / "rnnchat").exists() else None
HEAVY = ("torch", "numpy", "textual", "safetensors", "rich")


def command(*args: str) -> list[str]:
    return [RNNCHAT, *args] if RNNCHAT else [sys.executable, "-m", "rnnchat", *args]


def run_timed(cmd: list[str], env: dict, tty: bool = False, timeout: float = 60.0):
    """Run ``cmd``; returns (wall seconds, stderr text, peak RSS in MB, exit code)."""
    t0 = time.perf_counter()
    if tty:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
        proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env,
                                close_fds=True, start_new_session=True)
        os.close(slave)

        def drain():  # read the screen output so the app never blocks on a full terminal
            try:
                while os.read(master, 65536):
                    pass
            except OSError:
                pass

        threading.Thread(target=drain, daemon=True).start()
    else:
        master = None
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err_chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(5)
    if master is not None:
        os.close(master)
    return wall, b"".join(err_chunks).decode("utf-8", "replace"), usage.ru_maxrss / 1024, proc.returncode


def imported_heavy(env: dict) -> list[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import sys; sys.argv=['rnnchat','--help'];"
                          "from rnnchat.cli import main; main()"], env=env, capture_output=True, text=True)
    mods = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    return sorted(m for m in mods if m in HEAVY)


def event_time(stderr: str, event: str) -> float | None:
    m = re.search(rf"rnnchat-startup {event} ([0-9.]+)", stderr)
    return float(m.group(1)) if m else None


ENGINE_RUN = """
import resource, sys
from rnnchat.engine.runtime import open_engine
from rnnchat.core.params import SamplingParams
engine, path = open_engine(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None)
state = engine.initial_state()
for turn in range(20):
    logits, state = engine.feed(engine.encode("YOU:\\nSpeak again, I pray thee.\\n\\n").ids, state)
    stream = engine.stream(logits, state, SamplingParams(seed=turn, max_chars=500))
    for _ in stream:
        pass
    state = stream.state
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
print("rss", int(status["VmRSS"].split()[0]) / 1024, "peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
      engine.backend, path)
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--model", default=None, help="model for the chat app (default: the bundled one)")
    args = ap.parse_args(argv)
    env = dict(os.environ, TERM=os.environ.get("TERM", "xterm-256color"), COLUMNS="100", LINES="30")
    env.pop("RNNCHAT_EXIT_AFTER", None)
    chat = command("chat", "--model", args.model) if args.model else command()

    help_walls = [run_timed(command("--help"), env)[0] for _ in range(args.repeats)]
    heavy = imported_heavy(env)
    notes = []

    def launches(event):
        """Open the app ``repeats`` times, exiting at ``event``: (event times, walls, peak RSS)."""
        times, walls_, peaks = [], [], []
        for _ in range(args.repeats):
            wall, err, peak, code = run_timed(chat, dict(env, RNNCHAT_EXIT_AFTER=event), tty=True)
            t = event_time(err, event)
            if t is None:
                notes.append(f"{event}: no report (exit {code}): {err.strip()[-300:]}")
                break
            times.append(t)
            walls_.append(wall)
            peaks.append(peak)
        return times, walls_, peaks

    frames, _, _ = launches("first-frame")
    readies, walls, rss = launches("ready")
    eng = subprocess.run([sys.executable, "-c", ENGINE_RUN, args.model or ""], capture_output=True, text=True,
                         env=env)

    def med(xs, unit="s", scale=1.0):
        return f"{statistics.median(xs) * scale:.3f} {unit}" if xs else "n/a"

    print(f"# startup: medians of {args.repeats}; load avg {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"rnnchat --help               {med(help_walls)}   (target <= 0.25 s; heavy imports: "
          f"{', '.join(heavy) or 'none'})")
    print(f"chat app first frame         {med(frames)}   (target <= 0.8 s, since process start)")
    print(f"chat app model ready         {med(readies)}   (target <= 3 s; process wall until exit {med(walls)})")
    print(f"chat app peak RSS at ready   {med(rss, 'MB')}   (target < 600 MB)")
    print(f"engine, 20 turns x 500 chars {eng.stdout.strip() or eng.stderr.strip()[-300:]}  (MB)")
    for n in notes:
        print("note:", n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
