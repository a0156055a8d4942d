"""Helpers for the TUI tests: the app driven by a FakeSession (scripted replies, no torch)."""

from __future__ import annotations


from rnnchat.session.fake import FakeSession


class Harness:
    """Builds the app with a FakeSession factory and records what the app notifies."""

    def __init__(self, **fake_kwargs) -> None:
        self.fake_kwargs = fake_kwargs
        self.sessions: list[FakeSession] = []
        self.notes: list[tuple[str, str]] = []
        self.gate = fake_kwargs.get("gate")

    def factory(self, model, params, fallback):
        s = FakeSession(model, params=params, **self.fake_kwargs)
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
    def session(self) -> FakeSession:
        return self.sessions[-1]

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
                   and app._loading is None, "the first frame and the model")
    await pilot.pause()  # let the panel lay out the model's facts before anything is clicked


async def send(pilot, text: str, wait: bool = True):
    app = pilot.app
    app.input.focus()
    app.input.value = text
    await pilot.press("enter")
    if wait:
        await wait_for(pilot, lambda: app._live is None and not app.session.busy, "the reply to finish")
