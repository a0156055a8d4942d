"""Export a conversation as Markdown (``/save``). Torch-free."""

from __future__ import annotations

import time
from pathlib import Path

from rnnchat import paths
from rnnchat.atomic import write_bytes
from rnnchat.errors import RnnchatError
from rnnchat.session.types import SessionError, SessionInfo, Turn

REASONS = {"cancelled": "stopped", "length": "cut at the length limit"}


def _lines(text: str) -> str:
    # two trailing spaces: a hard line break, so verse keeps its lines
    return "  \n".join(text.rstrip("\n").split("\n"))


def to_markdown(turns: list[Turn], info: SessionInfo | None, params: dict | None = None) -> str:
    out = ["# rnnchat conversation", ""]
    if info is not None:
        loss = f", validation loss {info.val_loss:.3f}" if isinstance(info.val_loss, (int, float)) else ""
        out.append(f"Model **{info.name}** ({info.cell}, {info.layers}×{info.hidden}, "
                   f"{info.parameters:,} parameters{loss}) on {info.device}.  ")
    if params:
        out.append(f"Temperature {params.get('temperature', 0):.2f}, top-k {params.get('top_k') or 'off'}, "
                   f"top-p {params.get('top_p', 1):.2f}, max {params.get('max_chars')} characters.  ")
    out.append(f"Exported {time.strftime('%Y-%m-%d %H:%M')}.")
    out.append("")
    for t in turns:
        if t.role == "user":
            out += ["### You", "", _lines(t.text), ""]
        else:
            out += [f"### {t.speaker or (info.name if info else 'Model')}", "", _lines(t.body)]
            if t.reason in REASONS:
                out += ["", f"*({REASONS[t.reason]})*"]
            out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def export_markdown(turns: list[Turn], info: SessionInfo | None, params: dict | None = None,
                    path: str | Path | None = None) -> Path:
    """Write the transcript; ``path`` defaults to ``<data dir>/exports/chat-<time>.md``."""
    if not turns:
        raise SessionError("nothing to save yet: the conversation is empty")
    if path is None:
        target = paths.data_dir() / "exports" / f"chat-{time.strftime('%Y%m%d-%H%M%S')}.md"
    else:
        target = Path(path).expanduser()
        if target.is_dir():
            target = target / f"chat-{time.strftime('%Y%m%d-%H%M%S')}.md"
    try:
        write_bytes(target, to_markdown(turns, info, params).encode("utf-8"))
    except OSError as exc:
        raise SessionError(f"could not write {target}: {exc.strerror or exc}") from None
    except RnnchatError:
        raise
    return target.resolve()
