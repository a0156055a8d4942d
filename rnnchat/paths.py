"""Where rnnchat keeps things: platformdirs, or RNNCHAT_HOME when it is set."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def _home() -> Path | None:
    home = os.environ.get("RNNCHAT_HOME")
    return Path(home).expanduser() if home else None


def data_dir() -> Path:
    """Trained models, conversations and downloaded corpora."""
    home = _home()
    return home / "data" if home else Path(platformdirs.user_data_dir("rnnchat"))


def config_dir() -> Path:
    """Settings."""
    home = _home()
    return home / "config" if home else Path(platformdirs.user_config_dir("rnnchat"))


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
