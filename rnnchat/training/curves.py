"""Loss curves of a run: text for the terminal (plotext) and a PNG image (matplotlib, Agg). Torch-free.

``points`` are metrics lines as :mod:`rnnchat.training.run_metrics` reads them: dicts with ``step`` and
``train_loss`` and/or ``val_loss`` (None where a line has no such value).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

MAX_POINTS = 2000  # points drawn per curve at most: longer runs are thinned evenly
_PLOTEXT = threading.Lock()  # plotext draws on one module-level figure


def curve(points: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one series, thinned to at most MAX_POINTS (the last point always kept)."""
    pairs = [(p["step"], p[key]) for p in points if p.get(key) is not None]
    if len(pairs) > MAX_POINTS:
        stride = len(pairs) / MAX_POINTS
        pairs = [pairs[int(i * stride)] for i in range(MAX_POINTS - 1)] + [pairs[-1]]
    return [s for s, _ in pairs], [v for _, v in pairs]


def loss_plot(points: list[dict], width: int, height: int) -> str:
    """The train (braille line) and validation (dots) losses against the step, as plain text lines
    without colour or escape codes, ``width`` x ``height`` terminal cells. Empty when nothing to draw."""
    import plotext

    width, height = max(20, int(width)), max(6, int(height))
    train, val = curve(points, "train_loss"), curve(points, "val_loss")
    if not train[0] and not val[0]:
        return ""
    with _PLOTEXT:
        fig = plotext.figure
        fig.clear()
        fig.plot_size(width, height)
        fig.theme("colorless")
        if train[0]:
            fig.draw(fig.signal(*train, marker="braille").lines().label("train"))
        if val[0]:
            fig.draw(fig.signal(*val, marker="•").label("validation"))
        fig.legend(active=False)  # the title says which is which: a legend box would hide the curve
        fig.title(_title(train, val))
        text = fig.build().string(colorless=True)
        fig.clear()
    return text


def _title(train, val) -> str:
    parts = []
    if train[1]:
        parts.append(f"⠒ train {train[1][-1]:.3f}")
    if val[1]:
        parts.append(f"• validation {val[1][-1]:.3f} (best {min(val[1]):.3f})")
    return "loss by step   " + "   ".join(parts)


def save_plot_image(points: list[dict], path: str | os.PathLike) -> Path:
    """Draw the curves into a PNG at ``path``, written atomically (a temp file renamed over it)."""
    from rnnchat.core.atomic import write_bytes

    path = Path(path)
    write_bytes(path, plot_image_bytes(points))
    return path


def plot_image_bytes(points: list[dict]) -> bytes:
    """The curves as PNG bytes (matplotlib, Agg backend; no pyplot, so any thread may draw)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    train, val = curve(points, "train_loss"), curve(points, "val_loss")
    if train[0]:
        ax.plot(*train, label="train", linewidth=1.2)
    if val[0]:
        ax.plot(*val, label="validation", marker="o", markersize=3, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per character)")
    ax.grid(True, alpha=0.3)
    if train[0] or val[0]:
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
