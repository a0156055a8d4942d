"""A run's metrics and samples as JSON lines in its folder (torch-free).

``metrics.jsonl``: one object per line, ``{"step": int, "time": float, "train_loss": float|null,
"val_loss": float|null, "lr": float, "chars_per_s": float|null}``; ``time`` is the run's training
clock in seconds (it goes on across resumes). A line has a train loss (the mean since the line
before), a validation loss, or both.

``samples.jsonl``: ``{"step": int, "text": str}``, one per evaluation.

The files are appended to line by line, so a run killed at any moment leaves every whole line
readable; readers check each line's types and skip the ones that are not whole or not valid
(the files are untrusted like any other).
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path

METRICS = "metrics.jsonl"
SAMPLES = "samples.jsonl"
MAX_READ = 64 << 20  # bytes read from a metrics or samples file at most
MAX_SAMPLE_CHARS = 4000


def _number(value) -> float | None:
    """A finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def make_point(step: int, time: float, lr: float, train_loss: float | None = None,
               val_loss: float | None = None, chars_per_s: float | None = None) -> dict:
    return {"step": int(step), "time": round(float(time), 3), "train_loss": _rounded(train_loss),
            "val_loss": _rounded(val_loss), "lr": float(lr), "chars_per_s": _rounded(chars_per_s, 1)}


def _rounded(value, digits: int = 5):
    value = _number(value)
    return None if value is None else round(value, digits)


def valid_point(obj) -> dict | None:
    """The point in ``obj`` with its types checked, or None when it is not a valid metrics line."""
    if not isinstance(obj, dict):
        return None
    step = obj.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return None
    time, lr = _number(obj.get("time")), _number(obj.get("lr"))
    if time is None or time < 0 or lr is None:
        return None
    point = {"step": step, "time": time, "lr": lr}
    for key in ("train_loss", "val_loss", "chars_per_s"):
        value = obj.get(key)
        if value is not None and _number(value) is None:
            return None
        point[key] = _number(value)
    if point["train_loss"] is None and point["val_loss"] is None:
        return None
    return point


class RunLog:
    """Appends metrics and samples to a run folder (rank 0 of a run only)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)

    @property
    def metrics_path(self) -> Path:
        return self.folder / METRICS

    @property
    def samples_path(self) -> Path:
        return self.folder / SAMPLES

    def point(self, point: dict) -> None:
        _append(self.metrics_path, point)

    def sample(self, step: int, text: str) -> None:
        _append(self.samples_path, {"step": int(step), "text": str(text)[:MAX_SAMPLE_CHARS]})

    def forget_after(self, step: int) -> None:
        """Drop the lines written after ``step`` (a run resumed from an earlier save writes them again)."""
        for path, check in ((self.metrics_path, valid_point), (self.samples_path, valid_sample)):
            lines = _read_lines(path)
            if lines is None:
                continue
            keep = [line for line in lines if (v := check(_loads(line))) is not None and v["step"] <= step]
            if len(keep) != len(lines):
                from rnnchat.core.atomic import write_bytes

                write_bytes(path, "".join(line + "\n" for line in keep).encode("utf-8"))

    def clear(self) -> None:
        for path in (self.metrics_path, self.samples_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def _append(path: Path, obj: dict) -> None:
    line = json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n"
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise OSError(f"{path} is not a regular file")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)


def _loads(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


def _read_lines(path: Path) -> list[str] | None:
    """The whole lines of a regular file (at most MAX_READ bytes), or None when there is no such file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            return None
        data = fh.read(MAX_READ)
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    return [line for line in lines[:-1] if line.strip()]  # the last piece is cut short or empty


def valid_sample(obj) -> dict | None:
    if not isinstance(obj, dict):
        return None
    step, text = obj.get("step"), obj.get("text")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0 or not isinstance(text, str):
        return None
    return {"step": step, "text": text[:MAX_SAMPLE_CHARS]}


def read_points(folder: str | os.PathLike) -> list[dict]:
    """The valid metrics lines of a run folder, in file order (invalid ones skipped)."""
    lines = _read_lines(Path(folder) / METRICS) or []
    return [p for p in (valid_point(_loads(line)) for line in lines) if p is not None]


def read_samples(folder: str | os.PathLike, last: int | None = None) -> list[dict]:
    """The valid samples of a run folder (the ``last`` ones when given). Their text is raw: escape it
    before showing it on a terminal."""
    lines = _read_lines(Path(folder) / SAMPLES) or []
    samples = [s for s in (valid_sample(_loads(line)) for line in lines) if s is not None]
    return samples[-last:] if last else samples
