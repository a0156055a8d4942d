"""``rnnchat models`` and ``rnnchat inspect``: read checkpoint headers, no torch needed.

Every string taken from a file is printed through ``safe_text`` (escape sequences shown, never sent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from rnnchat.store.checkpoint_meta import read_header
from rnnchat.core.errors import RnnchatError
from rnnchat.plugins.manager import get_host
from rnnchat.plugins.resolve import resolve_model
from rnnchat.core.safe_text import json_safe, printable
from rnnchat.session.models import model_rows  # noqa: F401 - `rnnchat models` lists them


def inspect_checkpoint(path_or_name: str, as_json: bool) -> None:
    path = resolve_model(path_or_name).path
    h = read_header(path)
    meta = dict(h.meta)
    vocab = meta.pop("vocab")
    info = {"path": str(path), "size_bytes": h.size, "parameters": h.parameters,
            "tensors": {k: {"dtype": t.dtype, "shape": list(t.shape)} for k, t in h.tensors.items()},
            "vocab_size": len(vocab), "vocab": "".join(vocab), **meta}
    if as_json:
        click.echo(json_safe(json.dumps(info, indent=2, ensure_ascii=False)))
        return
    for key, value in info.items():
        if key == "tensors":
            click.echo("tensors:")
            for name, t in value.items():
                click.echo(f"  {printable(name):<28} {t['dtype']:<5} {t['shape']}")
        elif key == "vocab":
            click.echo(f"vocab: {printable(repr(value))}")
        else:
            shown = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
            click.echo(f"{printable(key)}: {printable(shown)}")



def removable_model(name: str) -> Path:
    """The file of the model ``name`` if the user made it (a file in the user data folder's models);
    a built-in or plugin model, or an unknown name, is a one-line error."""
    from rnnchat.core import paths

    host = get_host()
    path = Path(host.checkpoints[name].path) if name in host.checkpoints else None
    if path is None or (path.parent.resolve() == paths.models_dir().resolve() and not os.path.lexists(path)):
        raise RnnchatError(f"no model named {printable(repr(name), 100)}; see `rnnchat models`")
    dist = host.dist_of("checkpoints", name)
    if path.parent.resolve() != paths.models_dir().resolve() or path.is_dir():
        if dist in (None, "rnnchat"):
            raise RnnchatError(f"model {name!r} is built into rnnchat and cannot be removed")
        raise RnnchatError(f"model {name!r} comes from the plugin package {dist} and cannot be removed here; "
                           f"`rnnchat uninstall {dist}` removes the package")
    return path
