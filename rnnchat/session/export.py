"""Export a conversation as Markdown or JSON (``/save``, ``/save json``, ``/save PATH.json``).

Each reply carries the sampling values it was written with (a conversation's replies may
differ: the temperature changes live). Torch-free; written atomically."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from rnnchat.core import paths
from rnnchat.core.atomic import write_bytes
from rnnchat.core.errors import RnnchatError
from rnnchat.session.types import SessionError, SessionInfo, Turn

REASONS = {"cancelled": "stopped", "length": "cut at the length limit"}


def _lines(text: str) -> str:
    # two trailing spaces: a hard line break, so verse keeps its lines
    return "  \n".join(text.rstrip("\n").split("\n"))


def values_line(params: dict, seed: int | None = None) -> str:
    """The sampling values of a reply in one line: 'temperature 0.50, top-k off, ...'."""
    def get(name, default):
        value = params.get(name, default)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default

    def unless(value, off) -> str:
        return "off" if value == off else f"{value:g}"

    parts = [f"temperature {get('temperature', 0.0):.2f}", f"top-k {get('top_k', 0) or 'off'}",
             f"top-p {get('top_p', 1.0):.2f}", f"repetition penalty {unless(get('repetition_penalty', 1.0), 1.0)}",
             f"min-p {unless(get('min_p', 0.0), 0.0)}",
             f"presence penalty {unless(get('presence_penalty', 0.0), 0.0)}",
             f"frequency penalty {unless(get('frequency_penalty', 0.0), 0.0)}",
             f"max {get('max_chars', 0)} characters"]
    if seed is not None:
        parts.append(f"seed {seed}")
    return ", ".join(parts)


def to_json(turns: list[Turn], info: SessionInfo | None, params: dict | None = None) -> str:
    facts = {k: v for k, v in asdict(info).items() if isinstance(v, (str, int, float, list, type(None)))} \
        if info is not None else None
    return json.dumps({
        "format": "rnnchat-conversation", "version": 1, "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": facts, "params": params,
        "turns": [{"role": t.role, "text": t.text, "fed": t.fed, "speaker": t.speaker, "reason": t.reason,
                   "seed": t.seed, "params": t.params, "chars_per_s": t.chars_per_s} for t in turns],
    }, ensure_ascii=False, indent=2) + "\n"


def to_markdown(turns: list[Turn], info: SessionInfo | None, params: dict | None = None) -> str:
    out = ["# rnnchat conversation", ""]
    if info is not None:
        loss = f", validation loss {info.val_loss:.3f}" if isinstance(info.val_loss, (int, float)) else ""
        out.append(f"Model **{info.name}** ({info.cell}, {info.layers}×{info.hidden}, "
                   f"{info.parameters:,} parameters{loss}) on {info.device}.  ")
    if params:
        out.append(f"Now: {values_line(params)}.  ")
    out.append(f"Exported {time.strftime('%Y-%m-%d %H:%M')}.")
    out.append("")
    for t in turns:
        if t.role == "user":
            out += ["### You", "", _lines(t.text), ""]
        else:
            out += [f"### {t.speaker or (info.name if info else 'Model')}", "", _lines(t.body)]
            notes = ([REASONS[t.reason]] if t.reason in REASONS else []) + ([values_line(t.params, t.seed)]
                                                                              if t.params else [])
            if notes:
                out += ["", f"*({'; '.join(notes)})*"]
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def export_markdown(turns: list[Turn], info: SessionInfo | None, params: dict | None = None,
                    path: str | Path | None = None) -> Path:
    """Write the transcript; ``path`` defaults to ``<data dir>/exports/chat-<time>.md``; a path
    ending in ``.json`` (or just ``json``: the default name) writes JSON instead of Markdown."""
    if not turns:
        raise SessionError("nothing to save yet: the conversation is empty")
    as_json = path is not None and (str(path) == "json" or str(path).lower().endswith(".json"))
    name = f"chat-{time.strftime('%Y%m%d-%H%M%S')}.{'json' if as_json else 'md'}"
    if path is None or str(path) == "json":
        target = paths.data_dir() / "exports" / name
    else:
        target = Path(path).expanduser()
        if target.is_dir():
            target = target / name
    text = to_json(turns, info, params) if as_json else to_markdown(turns, info, params)
    try:
        write_bytes(target, text.encode("utf-8"))
    except OSError as exc:
        raise SessionError(f"could not write {target}: {exc.strerror or exc}") from None
    except RnnchatError:
        raise
    return target.resolve()
