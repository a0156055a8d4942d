"""The ``session`` extension's store: the state a session's last request left, per session id.

Bounded in number (least recently used dropped first) and in time (dropped after ``ttl``
seconds idle). A state is an opaque handle from the engine adapter; this module is torch-free.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_MAX_SESSIONS = 256
DEFAULT_TTL = 1800.0


@dataclass
class Session:
    model: str
    handle: object            # (logits, state) after the last request, for the engine only
    closed: bool              # the last reply ended with the model's own stop sequence
    used: float
    busy: bool = False


class SessionStore:
    def __init__(self, max_sessions: int = DEFAULT_MAX_SESSIONS, ttl: float = DEFAULT_TTL, clock=time.monotonic):
        self.max_sessions, self.ttl, self.clock = max_sessions, ttl, clock
        self._items: OrderedDict[str, Session] = OrderedDict()

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._items.items() if not s.busy and now - s.used > self.ttl]:
            del self._items[key]

    def get(self, key: str) -> Session | None:
        self._expire()
        s = self._items.get(key)
        if s is not None:
            s.used = self.clock()
            self._items.move_to_end(key)
        return s

    def put(self, key: str, model: str, handle, closed: bool) -> None:
        self._expire()
        self._items[key] = Session(model, handle, closed, self.clock())
        self._items.move_to_end(key)
        while len(self._items) > self.max_sessions:
            oldest = next((k for k, s in self._items.items() if not s.busy), None)
            if oldest is None:
                break
            del self._items[oldest]

    def __len__(self) -> int:
        return len(self._items)
