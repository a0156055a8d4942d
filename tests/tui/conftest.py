"""TUI fixtures: the app over the real session and a FakeEngine (scripted replies, no torch)."""

from __future__ import annotations

import threading

import pytest
from tui_helpers import Harness


@pytest.fixture
def harness():
    def make(**kw) -> Harness:
        return Harness(**kw)

    return make


@pytest.fixture
def gate():
    ev = threading.Event()
    yield ev
    ev.set()  # never leave a worker waiting


