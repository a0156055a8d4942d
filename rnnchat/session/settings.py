"""User settings (last model, sampling values, theme, confidence colours) in ``paths.settings_file()``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from rnnchat import paths
from rnnchat.atomic import write_bytes
from rnnchat.errors import SamplingError
from rnnchat.params import SamplingParams


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
        """(settings, warning). A missing file gives the defaults; a damaged one gives the defaults
        and a one-line warning, and is left in place until the next save."""
        path = paths.settings_file()
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(), None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return cls(), f"ignored the settings in {path}: {exc}"
        if not isinstance(raw, dict):
            return cls(), f"ignored the settings in {path}: not a JSON object"
        s = cls()
        names = {f.name for f in fields(cls)}
        for key, value in raw.items():
            if key in names:
                setattr(s, key, value)
        try:
            s.params().validate()
        except SamplingError as exc:
            return cls(model=s.model if isinstance(s.model, str) else None), f"ignored the sampling settings: {exc}"
        if s.model is not None and not isinstance(s.model, str):
            s.model = None
        if s.theme is not None and not isinstance(s.theme, str):
            s.theme = None
        s.confidence = bool(s.confidence)
        return s, None

    def params(self) -> SamplingParams:
        return SamplingParams(**{k: getattr(self, k) for k in self.SAMPLING})

    def take_params(self, params: SamplingParams) -> None:
        for k in self.SAMPLING:
            setattr(self, k, getattr(params, k))

    def save(self) -> None:
        data = json.dumps(asdict(self), indent=2).encode("utf-8")
        write_bytes(paths.settings_file(), data + b"\n")
