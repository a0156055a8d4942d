"""Helpers for the TUI tests: the app driving the real ChatSession over a FakeEngine (no torch)."""

from __future__ import annotations

from rnnchat.session.chat import ChatSession
from rnnchat.session.fake_engine import FakeEngine


class Harness:
    """Builds the app with a factory of real sessions over fake engines, and records what the
    app notifies. ``fake_kwargs`` go to ``FakeEngine.opener`` (load_gate, load_error, missing)
    and to each FakeEngine (replies, gate, hold_after, char_delay, template, stop); they may be
    changed between loads."""

    def __init__(self, autosave: bool = False, **fake_kwargs) -> None:
        self.autosave = autosave
        self.fake_kwargs = fake_kwargs
        self.sessions: list[ChatSession] = []
        self.engines: list[FakeEngine] = []
        self.notes: list[tuple[str, str]] = []
        self.gate = fake_kwargs.get("gate")

    def factory(self, model, params, fallback):
        opener = FakeEngine.opener(made=self.engines, **self.fake_kwargs)
        s = ChatSession(model, params=params, fallback=fallback, autosave=self.autosave, engine=opener)
        self.sessions.append(s)
        return s

    def app(self, model=None, **kw):
        from rnnchat.tui.app import RnnchatApp

        app = RnnchatApp(model, session_factory=self.factory, **kw)
        original = app.notify

        def notify(message, *, title="", severity="information", **rest):
            self.notes.append((severity, str(message)))
            return original(message, title=title, severity=severity, **rest)

        app.notify = notify
        return app

    @property
    def session(self) -> ChatSession:
        return self.sessions[-1]

    @property
    def engine(self) -> FakeEngine:
        return self.session.engine

    def produced(self) -> str:
        """What the last reply's engine run produced so far."""
        return "".join(self.engine.generations[-1].produced) if self.engine.generations else ""

    def errors(self) -> list[str]:
        return [m for sev, m in self.notes if sev == "error"]


async def wait_for(pilot, condition, what: str = "condition", limit: int = 1000):
    """Let the app run until ``condition()`` holds (a bounded number of short pauses)."""
    for _ in range(limit):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def ready(pilot):
    app = pilot.app
    await wait_for(pilot, lambda: app._painted and app.session is not None and app.session.loaded
                   and app.loading_model is None, "the first frame and the model")
    await pilot.pause()  # let the panel lay out the model's facts before anything is clicked


def idle(app) -> bool:
    return app.chat.live is None and not app.session.busy


async def send(pilot, text: str, wait: bool = True):
    app = pilot.app
    app.input.focus()
    app.input.value = text
    await pilot.pause()  # the composer's Changed (which starts the read-ahead) before Enter, as typing gives
    await pilot.press("enter")
    if wait:
        await wait_for(pilot, lambda: idle(app), "the reply to finish")
