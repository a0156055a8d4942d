"""Does ``--budget`` bound the whole command? And how fast does SIGTERM end a run in each phase?

    python benchmarks/budget.py [--budgets 30s,90s,5m] [--corpus PATH] [--preset default] [--threads N]
    python benchmarks/budget.py --sigterm [--threads N]

The first form runs ``rnnchat train CORPUS --budget B`` (a fresh RNNCHAT_HOME each time, the default
preset on tinyshakespeare from ../shared/corpora) and prints, for each budget, the command's wall time
measured from outside (process start to exit: start-up, steps, evaluations, the final re-score, the
save) against the budget and the allowed overrun, max(5 s, 5%).

The second form runs the default preset through tests/train/fault_runner.py, which marks when a phase
(steps, evaluation, re-score, save) is entered, sends SIGTERM there and prints the seconds from the
signal to the end of the process, and whether a resumable state was left.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
sys.path.insert(0, str(ROOT))


def parse_budget(text: str) -> float:
    from rnnchat.core.units import parse_duration

    return parse_duration(text)


def env_for(home: Path, threads: int | None) -> dict:
    env = dict(os.environ, RNNCHAT_HOME=str(home), PYTHONPATH=str(ROOT))
    if threads:
        env["RNNCHAT_THREADS"] = str(threads)
    return env


def run_budget(budget: str, corpus: Path, preset: str, threads: int | None) -> dict:
    from rnnchat.engine.resume import peek_state

    with tempfile.TemporaryDirectory(prefix="rnnchat-budget-") as tmp:
        home = Path(tmp)
        cmd = [sys.executable, "-m", "rnnchat", "train", str(corpus), "--preset", preset, "--budget", budget,
               "--name", "bench", "-q"]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env_for(home, threads), cwd=ROOT)
        wall = time.perf_counter() - t
        meta = peek_state(home / "data" / "runs" / "bench" / "state.safetensors") or {}
        model = home / "data" / "models" / "bench.safetensors"
        loss = method = None
        if model.exists():
            from rnnchat.store.checkpoint_meta import read_header

            m = read_header(model).meta
            loss, method = m.get("val_loss"), m.get("val_loss_method")
    seconds = parse_budget(budget)
    allowed = seconds + max(5.0, 0.05 * seconds)
    notes = [line[6:] for line in r.stderr.splitlines() if line.startswith("note: ")]
    return {"budget": budget, "seconds": seconds, "wall": wall, "ratio": wall / seconds, "allowed": allowed,
            "within": wall <= allowed, "code": r.returncode, "steps": meta.get("progress", {}).get("step"),
            "loss": loss, "method": method, "notes": notes, "stderr": r.stderr[-400:]}


PHASES = ("steps", "evaluation", "re-score", "save")


def run_sigterm(phase: str, corpus: Path, threads: int | None) -> dict:
    from rnnchat.engine.resume import read_state
    from rnnchat.core.errors import RnnchatError

    with tempfile.TemporaryDirectory(prefix="rnnchat-sigterm-") as tmp:
        home, marks = Path(tmp) / "home", Path(tmp) / "marks"
        marks.mkdir()
        cmd = [sys.executable, "-m", "tests.train.fault_runner", "--pause-in", f"{phase}:0", "--mark", str(marks),
               "--", "train", str(corpus), "--steps", "8", "--eval-every", "4", "--name", "s", "-q"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env_for(home, threads), cwd=ROOT)
        while not (marks / phase).exists() and proc.poll() is None:
            time.sleep(0.01)
        if proc.poll() is not None:
            return {"phase": phase, "seconds": None, "code": proc.returncode, "state": "-",
                    "note": "ended before the phase: " + proc.stderr.read()[-200:]}
        t = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=600)
        seconds = time.perf_counter() - t
        try:
            meta = read_state(home / "data" / "runs" / "s" / "state.safetensors")[0]
            state = f"step {meta['progress']['step']}"
        except RnnchatError as exc:
            state = f"none ({exc})"
        last = err.strip().splitlines()[-1] if err.strip() else ""
    return {"phase": phase, "seconds": seconds, "code": proc.returncode, "state": state, "note": last[:90]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budgets", default="30s,90s,5m", help="comma-separated budgets (default 30s,90s,5m)")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--preset", default="default")
    ap.add_argument("--threads", type=int, help="RNNCHAT_THREADS for the runs (default: rnnchat's choice)")
    ap.add_argument("--sigterm", action="store_true", help="measure SIGTERM to exit in each phase instead")
    args = ap.parse_args(argv)
    if not args.corpus.is_file():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} cores, load average {load:.1f} at the start, threads {args.threads or 'default'}")
    if args.sigterm:
        print("| phase | SIGTERM to exit (s) | exit status | state left | last line |")
        print("| --- | --- | --- | --- | --- |")
        for phase in PHASES:
            r = run_sigterm(phase, args.corpus, args.threads)
            secs = f"{r['seconds']:.2f}" if r["seconds"] is not None else "-"
            print(f"| {phase} | {secs} | {r['code']} | {r['state']} | {r['note']} |", flush=True)
        return 0
    print("| budget | wall (s) | wall / budget | allowed (s) | within | steps | val loss | how scored |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    failed = False
    for budget in args.budgets.split(","):
        r = run_budget(budget.strip(), args.corpus, args.preset, args.threads)
        failed |= not r["within"] or r["code"] != 0
        print(f"| {r['budget']} | {r['wall']:.1f} | {r['ratio']:.3f} | {r['allowed']:.1f} | "
              f"{'yes' if r['within'] else 'NO'} | {r['steps']} | {r['loss']} | {r['method']} |", flush=True)
        for note in r["notes"]:
            print(f"|   | note: {note} | | | | | | |")
        if r["code"] != 0:
            print(f"exit status {r['code']}: {r['stderr']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
