"""User settings (last model, sampling values, theme, confidence colours, keys, presets) in ``paths.settings_file()``.

The sampling values are one :class:`SamplingParams` (its defaults are the only ones); the
file keeps them flat (``"temperature": 0.8``) beside the other settings. ``keys`` maps the
chat's action ids to keys (``{"regenerate": "ctrl+g"}``); the app checks them."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, fields

from rnnchat.core import paths
from rnnchat.core.atomic import write_bytes
from rnnchat.core.errors import SamplingError
from rnnchat.core.params import SamplingParams
from rnnchat.core.safe_files import NotRegularFile, read_regular
from rnnchat.core.safe_text import printable
from rnnchat.session.presets import MAX_PRESETS, check_name, valid_preset

MAX_SETTINGS_BYTES = 1 << 20  # a real settings file is a few hundred bytes


@dataclass
class Settings:
    model: str | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)
    theme: str | None = None
    confidence: bool = False
    keys: dict = field(default_factory=dict)
    presets: dict = field(default_factory=dict)  # the user's own: name -> values (session/presets.py)

    SAMPLING = tuple(f.name for f in fields(SamplingParams) if f.name != "stop")  # kept flat in the file

    def __getattr__(self, name: str):
        if name in Settings.SAMPLING:  # settings.temperature: the value in ``sampling``
            return getattr(self.sampling, name)
        raise AttributeError(name)

    @classmethod
    def load(cls) -> tuple["Settings", str | None]:
        """(settings, warning). A missing file gives the defaults. A damaged one (not JSON, not an
        object, values of the wrong type or out of range) is moved aside to
        ``settings.json.damaged-<time>`` so it is neither lost nor overwritten silently; the
        defaults are used for what was damaged and the warning says where the copy went."""
        path = paths.settings_file()
        try:
            raw = json.loads(read_regular(path, MAX_SETTINGS_BYTES, "settings file").decode("utf-8"))
        except FileNotFoundError:
            return cls(), None
        except (IsADirectoryError, NotRegularFile) as exc:
            return cls(), f"ignored the settings in {path}: {_short(exc, 200)}"
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            return cls(), _damaged(path, f"not valid JSON ({_short(exc)})")
        if not isinstance(raw, dict):
            return cls(), _damaged(path, f"not a JSON object but {type(raw).__name__}")
        s = cls()
        problems: list[str] = []
        names = [f.name for f in fields(cls) if f.name != "sampling"] + list(cls.SAMPLING)
        for name in names:
            if name not in raw:
                continue
            value = raw[name]
            if name in ("model", "theme"):
                ok = value is None or (isinstance(value, str) and 0 < len(value) <= 4096 and printable(value) == value)
            elif name == "confidence":
                ok = isinstance(value, bool)
            elif name == "keys":
                ok = isinstance(value, dict) and len(value) <= 256 and all(
                    isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 64 for k, v in value.items())
            elif name == "presets":
                ok = isinstance(value, dict) and len(value) <= MAX_PRESETS and all(
                    _valid_name(k) and valid_preset(v) for k, v in value.items())
            else:
                ok = _valid_sampling(name, value)
            if not ok:
                problems.append(f"{name}={_short(repr(value))}")
            elif name in cls.SAMPLING:
                s.sampling = s.sampling.replace(**{name: value})
            else:
                setattr(s, name, value)
        if problems:
            return s, _damaged(path, "bad values: " + ", ".join(problems))
        return s, None

    def params(self) -> SamplingParams:
        return self.sampling

    def save(self) -> None:
        d = asdict(self)
        sampling = d.pop("sampling")
        d = {"model": d.pop("model"), **{k: sampling[k] for k in self.SAMPLING}, **d}
        data = json.dumps(d, indent=2).encode("utf-8")
        write_bytes(paths.settings_file(), data + b"\n")


def _valid_name(name) -> bool:
    try:
        check_name(name)
    except SamplingError:
        return False
    return True


def _valid_sampling(name: str, value) -> bool:
    try:
        SamplingParams(**{name: value}).validate()
    except (SamplingError, TypeError, ValueError, OverflowError):
        return False
    return True


def _short(x, limit: int = 80) -> str:
    x = " ".join(str(x).split())
    return x if len(x) <= limit else x[:limit - 1] + "…"


def _damaged(path, why: str) -> str:
    """Move a damaged settings file aside (kept for the user); the one-line warning says where."""
    backup = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    try:
        os.replace(path, backup)
    except OSError as exc:
        return f"the settings in {path} are damaged ({why}); using the defaults (could not move the file aside: {exc})"
    return f"the settings in {path} were damaged ({why}); using the defaults, the old file is kept as {backup.name}"
