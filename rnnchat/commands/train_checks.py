"""Checks ``rnnchat train`` makes before it changes anything: the output file, an existing run or
model of the same name, another training on the same run (torch-free)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from rnnchat.core.errors import RnnchatError

# The engine names settings in neutral words (rnnchat.engine.train_config.NEUTRAL_NAMES); the CLI's
# messages name its options.
FLAGS = {k: "--" + k.replace("_", "-") for k in (
    "cell", "layers", "hidden", "embedding", "dropout", "seq_len", "batch_size", "lr", "steps", "budget",
    "val_fraction", "eval_every", "save_every", "precision", "max_vocab", "warmup", "eval_streams")}


def check_writable_folder(folder: Path, what: str) -> None:
    """``folder`` exists (or can be made) and a file can be created in it: found now, not after training."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RnnchatError(f"cannot create the folder {folder} for {what}: {exc.strerror or exc}") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".rnnchat-probe.", dir=folder)
    except OSError as exc:
        raise RnnchatError(f"cannot write in {folder} ({what}): {exc.strerror or exc}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def check_out(out: str | os.PathLike, given: bool) -> Path:
    """The model's output path: its folder writable, the path absent or a regular file (never a device,
    a FIFO or a folder, which the atomic rename would replace). ``given``: the user named it with
    ``--out`` (its folder must exist), else it is the models folder (made if missing)."""
    path = Path(out).expanduser()
    if given and not path.parent.is_dir():
        raise RnnchatError(f"--out {path}: the folder {path.parent} does not exist; create it first")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise RnnchatError(f"--out {path}: {exc.strerror or exc}") from None
    if mode is not None and not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a device, FIFO or socket)"
        raise RnnchatError(f"--out {path} is {kind}: give the path of a .safetensors file")
    check_writable_folder(path.parent, "--out" if given else "the model")
    return path


def check_existing(folder: Path, out: Path | None, name: str | None, out_given: bool, overwrite: bool) -> None:
    """Refuse to start over a run (finished or not) or a named model unless ``overwrite``."""
    from rnnchat.engine.resume import peek_state, unfinished
    from rnnchat.engine.run_dir import FINAL_STATE, old_run_files

    if overwrite:
        return
    ref = name if name and folder.name == name else str(folder)
    if old_run_files(folder):
        saved = peek_state(folder / FINAL_STATE)
        left = saved and unfinished(saved)
        if left:
            raise RnnchatError(f"{folder} holds an unfinished run ({left}): continue it with "
                               f"`rnnchat train --resume {ref}`, or pass --overwrite to start over")
        done = _done(saved)
        raise RnnchatError(f"{folder} holds a finished run{done}: continue it with `rnnchat train --resume {ref} "
                           "--steps N` (or --budget T, the run's new total), or pass --overwrite to start over")
    if out is not None and not out_given and out.exists():
        raise RnnchatError(f"a model named {name!r} already exists ({out}): pass --overwrite to replace it, "
                           "or choose another --name")


def _done(saved: dict | None) -> str:
    try:
        return f" ({int(saved['progress']['step'])} steps)"
    except (TypeError, KeyError, ValueError):
        return ""
