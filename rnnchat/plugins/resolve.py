"""Which model file a "name or path" means: the one place that decides (torch-free).

A model is named on the command line, in the chat (``/model``), in the settings and in the
plugin authors' checks either by a registered checkpoint name (``rnnchat models``) or by a
file path; a registered name wins over a file of the same name. No name at all means the
default model. The engine (``open_engine``), ``rnnchat inspect``, fine-tuning, ``rnnchat probe``
and the checks of ``rnnchat.testing`` all ask :func:`resolve_model`; a model that is not there
is one :class:`ModelNotFound` line naming it and what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rnnchat.core.errors import ModelNotFound
from rnnchat.core.safe_text import printable

DEFAULT_MODEL = "shakespeare"  # opened when no model is named (else the first one registered)


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: its file, and its registered name (None: a file that is not registered)."""

    path: Path
    name: str | None = None

    @property
    def source(self) -> str:
        """What opens it again (the settings keep this): its registered name, else its path."""
        return self.name if self.name is not None else str(self.path)

    @property
    def label(self) -> str:
        """How it is shown: its registered name, else the file's name without the extension."""
        return self.name if self.name is not None else self.path.stem


def not_found(name_or_path, known=()) -> ModelNotFound:
    """The one-line error for a model that is neither a registered name nor a file."""
    names = f" (known: {', '.join(sorted(known))})" if known else ""
    return ModelNotFound(f"no model named {printable(repr(str(name_or_path)), 200)} and no such file; "
                         f"see `rnnchat models`{names}")


def resolve_model(name_or_path: str | os.PathLike | None, host=None) -> ModelRef:
    """A registered checkpoint name, a file path, or None (the default model) -> its
    :class:`ModelRef`. ``host``: the plugin host (default: the process's). A path that is the
    file of a registered checkpoint gets that checkpoint's name. Raises ModelNotFound."""
    if host is None:
        from rnnchat.plugins.manager import get_host

        host = get_host()
    checkpoints = host.checkpoints
    if name_or_path is None:
        name = DEFAULT_MODEL if DEFAULT_MODEL in checkpoints else next(iter(checkpoints), None)
        if name is None:
            raise ModelNotFound("no model is installed; train one with `rnnchat train CORPUS --name NAME`")
        return ModelRef(Path(checkpoints[name].path), name)
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"a model is a name or a path, not {type(name_or_path).__name__}")
    if isinstance(name_or_path, str):
        if name_or_path in checkpoints:
            return ModelRef(Path(checkpoints[name_or_path].path), name_or_path)
        if not name_or_path.strip() or "\0" in name_or_path:
            raise not_found(name_or_path, checkpoints)
    try:
        path = Path(name_or_path).expanduser()
    except RuntimeError:  # "~user" of no such user: the path as written
        path = Path(name_or_path)
    if not (path.exists() or path.is_symlink()):  # a dangling link is the loader's to refuse
        raise not_found(name_or_path, checkpoints)
    return ModelRef(path, _registered_name(checkpoints, path))


def _registered_name(checkpoints: dict, path: Path) -> str | None:
    """The name under which ``path``'s file is registered, if it is."""
    for name, spec in checkpoints.items():
        try:
            if Path(spec.path) == path or os.path.samefile(spec.path, path):
                return name
        except (OSError, ValueError):  # a registered file that is missing: not this one
            continue
    return None
