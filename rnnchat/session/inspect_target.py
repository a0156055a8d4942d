"""What the chat inspector colours by: a unit (``/inspect 2:442:c``) or "auto" for a feature. Torch-
and NumPy-free: the app parses commands with it at once; ``session/inspector.py`` does the reading."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rnnchat.session.types import SessionError

_NAME = r"[a-z][a-z0-9_]{0,15}"
_UNIT = re.compile(rf"^(\d{{1,3}}):(?:(\d{{1,7}})(?::({_NAME}))?|({_NAME}):(\d{{1,7}}))$")
USAGE = "write /inspect LAYER:UNIT[:QUANTITY] (e.g. 2:442:c), /inspect auto [FEATURE] or /inspect off"


@dataclass(frozen=True)
class Target:
    """What to colour by: a given unit (``quantity`` None: the layer's first, its cell state),
    or (``auto``) the unit ranked first for ``feature`` (None: the line or verse position)."""

    auto: bool = False
    layer: int = 0
    index: int = 0
    quantity: str | None = None
    feature: str | None = None

    def describe(self) -> str:
        if self.auto:
            return f"auto {self.feature}" if self.feature else "auto"
        return f"{self.layer}:{self.index}" + (f":{self.quantity}" if self.quantity else "")


def parse_target(arg: str) -> Target:
    """``2:442``, ``2:442:c`` (or the probe's ``2:c:442``), ``auto``, ``auto FEATURE`` (a built-in
    feature or ``NAME=REGEX``) -> a Target; a one-line SessionError otherwise."""
    arg = arg.strip()
    word, _, rest = arg.partition(" ")
    if word.lower() == "auto":
        rest = rest.strip()
        if rest and "=" in rest:
            from rnnchat.core.probe_features import parse_user_feature

            try:
                parse_user_feature(rest)
            except Exception as exc:  # noqa: BLE001 - RnnchatError: one line
                raise SessionError(f"/inspect auto: {str(exc).replace('--feature ', '')}") from None
        elif rest and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,31}", rest):
            raise SessionError(f"/inspect auto {rest[:40]!r}: name a feature (line_position, vowel...) or NAME=REGEX")
        return Target(auto=True, feature=rest or None)
    m = _UNIT.match(arg)
    if not m:
        raise SessionError(f"/inspect {arg[:40]!r}: {USAGE}")
    if m.group(2) is not None:
        return Target(layer=int(m.group(1)), index=int(m.group(2)), quantity=m.group(3))
    return Target(layer=int(m.group(1)), index=int(m.group(5)), quantity=m.group(4))
