"""User settings (last model, sampling values, theme, confidence colours) in ``paths.settings_file()``."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, fields

from rnnchat import paths
from rnnchat.atomic import write_bytes
from rnnchat.errors import SamplingError
from rnnchat.params import SamplingParams
from rnnchat.safe_files import NotRegularFile, read_regular
from rnnchat.safe_text import printable

MAX_SETTINGS_BYTES = 1 << 20  # a real settings file is a few hundred bytes


@dataclass
class Settings:
    model: str | None = None
    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    max_chars: int = 1000
    seed: int | None = None
    theme: str | None = None
    confidence: bool = False

    SAMPLING = ("temperature", "top_k", "top_p", "repetition_penalty", "max_chars", "seed")

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
        for f in fields(cls):
            if f.name not in raw:
                continue
            value, default = raw[f.name], getattr(s, f.name)
            if f.name in ("model", "theme"):
                ok = value is None or (isinstance(value, str) and 0 < len(value) <= 4096 and printable(value) == value)
            elif f.name == "confidence":
                ok = isinstance(value, bool)
            else:
                ok = _valid_sampling(f.name, value)
            if ok:
                setattr(s, f.name, value)
            else:
                problems.append(f"{f.name}={_short(repr(value))}")
                setattr(s, f.name, default)
        if problems:
            return s, _damaged(path, "bad values: " + ", ".join(problems))
        return s, None

    def params(self) -> SamplingParams:
        return SamplingParams(**{k: getattr(self, k) for k in self.SAMPLING})

    def take_params(self, params: SamplingParams) -> None:
        for k in self.SAMPLING:
            setattr(self, k, getattr(params, k))

    def save(self) -> None:
        data = json.dumps(asdict(self), indent=2).encode("utf-8")
        write_bytes(paths.settings_file(), data + b"\n")


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
