"""Where rnnchat keeps things: platformdirs, or RNNCHAT_HOME when it is set.

An ``RNNCHAT_HOME`` that cannot hold rnnchat's files (a file, a read-only folder, a path under a
file) is a one-line ``SettingError`` when a path is first asked for, before any work is done; so
is a platformdirs folder that is a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from rnnchat.core import env
from rnnchat.core.errors import SettingError


def _usable(path: Path, what: str, writable: bool = True) -> Path:
    """``path`` if rnnchat can create (and, if ``writable``, write) files under it; else a SettingError."""
    probe = path
    while not probe.exists() and not probe.is_symlink() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        found = "a file" if probe.is_file() else "not a folder" if probe.exists() else "a broken link"
        reason = f"it is {found}" if probe == path else f"{probe} is {found}"
        raise SettingError(f"{what} {str(path)!r} cannot be used: {reason}; point it at a folder you can write to")
    if writable and not os.access(probe, os.W_OK | os.X_OK):
        raise SettingError(f"{what} {str(path)!r} cannot be used: {probe} is not writable; "
                           "point it at a folder you can write to")
    return path


def _root(sub: str, default: str) -> Path:
    home = env.home()
    if home is not None:
        _usable(home, "RNNCHAT_HOME")
        return _usable(home / sub, f"RNNCHAT_HOME's {sub} folder")
    # platformdirs' folder: a read-only one is found by the write that needs it (reading still works)
    return _usable(Path(default), f"rnnchat's {sub} folder", writable=False)


def data_dir() -> Path:
    """Trained models, conversations and downloaded corpora."""
    return _root("data", platformdirs.user_data_dir("rnnchat"))


def config_dir() -> Path:
    """Settings."""
    return _root("config", platformdirs.user_config_dir("rnnchat"))


def models_dir() -> Path:
    return data_dir() / "models"


def runs_dir() -> Path:
    return data_dir() / "runs"


def corpora_dir() -> Path:
    return data_dir() / "corpora"


def history_db() -> Path:
    return data_dir() / "history.sqlite3"


def settings_file() -> Path:
    return config_dir() / "settings.json"
