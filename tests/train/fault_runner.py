"""Run ``rnnchat`` with test hooks injected into the trainer (nothing is read from the environment).

    python -m tests.train.fault_runner [--fail-rank R[:STEP[:exit]]] [--checksum-dir DIR]
           [--pause-in PHASE:SECONDS] [--mark DIR] -- train ARGS...

--fail-rank     rank R raises an error (or exits at once with status 3) before step STEP (default 3)
--checksum-dir  each rank writes rank<R>.sha256, a checksum of its final weights
--pause-in      slows a phase down (steps, evaluation, re-score, save) so that a test can send a signal
                in it; with --mark, the file DIR/<phase> appears when the phase is entered
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def main() -> None:
    argv = sys.argv[1:]
    cut = argv.index("--")
    ap = argparse.ArgumentParser()
    ap.add_argument("--fail-rank")
    ap.add_argument("--checksum-dir")
    ap.add_argument("--pause-in")
    ap.add_argument("--mark")
    opts = ap.parse_args(argv[:cut])

    from rnnchat.engine import train_hooks
    from rnnchat.core.errors import RnnchatError

    class Hooks(train_hooks.TrainHooks):
        def before_step(self, trainer, step):
            if opts.fail_rank:
                parts = opts.fail_rank.split(":")
                at = int(parts[1]) if len(parts) > 1 else 3
                if int(parts[0]) == trainer.rank and step == at:
                    if len(parts) > 2 and parts[2] == "exit":
                        os._exit(3)
                    raise RnnchatError(f"rank {trainer.rank}: failure injected at step {step}")
            if opts.pause_in:
                pause("steps", step > 2)

        def after_run(self, trainer):
            if opts.checksum_dir:
                folder = Path(opts.checksum_dir)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"rank{trainer.rank}.sha256").write_text(train_hooks.weights_sha256(trainer.model))

    def pause(phase: str, when: bool = True) -> None:
        wanted, _, seconds = opts.pause_in.partition(":")
        if phase == wanted and when:
            if opts.mark:
                Path(opts.mark, phase).touch()
            time.sleep(float(seconds or 0.2))

    train_hooks.current = Hooks()
    if opts.pause_in:
        _slow_phases(pause)
    sys.argv = ["rnnchat", *argv[cut + 1:]]
    from rnnchat.cli import main as cli_main

    cli_main()


def _slow_phases(pause) -> None:
    """Make each piece of work of the chosen phase slow, at the points where the loop checks for a stop."""
    from rnnchat.engine import train_loop

    real_phase = train_loop.TrainLoop.set_phase

    def set_phase(self, name, done=None, note=None):
        real_phase(self, name, done, note)
        phase = {"evaluating": "evaluation", "re-scoring": "re-score", "saving": "save"}.get(name)
        if phase and (phase == "re-score" or self.progress.step > 2):
            pause(phase)

    train_loop.TrainLoop.set_phase = set_phase


if __name__ == "__main__":
    main()
