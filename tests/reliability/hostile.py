"""Helpers for the hostile-file tests: a FIFO that notices being opened, checkpoints with edited metadata."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from pathlib import Path

ESC_TEXTS = ["\x1b]52;c;ZXZpbA==\x07", "\x1b]0;pwned\x07", "\x9b31m", "\u202eevil", "\x7f", "\x1b[2J"]
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\x7f")


def has_raw_escapes(text: str) -> bool:
    return any(c in text for c in RAW)


class GuardedFifo:
    """A named pipe, and a thread that keeps trying to open its write end without blocking. That
    succeeds only while somebody has the pipe open for reading, so ``opened`` says whether the code
    under test opened it; the writer then closes at once, so that reader gets EOF instead of
    hanging forever (on a build without the fix the test fails instead of hanging)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        os.mkfifo(self.path)
        self.opened = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.005)
                continue
            self.opened = True
            os.close(fd)
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def guarded_fifo(path: Path):
    fifo = GuardedFifo(path)
    try:
        yield fifo
    finally:
        fifo.stop()


def rewrite_meta(src: Path, dst: Path, change=None, tensors_change=None, raw_meta: str | None = None) -> Path:
    """Copy checkpoint ``src`` to ``dst`` with its rnnchat metadata edited by ``change(meta)``."""
    from safetensors.torch import load_file, save_file

    from rnnchat.store.checkpoint_meta import read_header

    meta = json.loads(json.dumps(read_header(src).meta))
    if change is not None:
        change(meta)
    tensors = load_file(str(src))
    if tensors_change is not None:
        tensors_change(tensors)
    text = raw_meta if raw_meta is not None else json.dumps(meta, ensure_ascii=False)
    save_file(tensors, str(dst), metadata={"rnnchat": text})
    return dst
