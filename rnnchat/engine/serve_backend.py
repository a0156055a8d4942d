"""The models a server offers (``rnnchat serve``): one worker per model, opened at start.

A worker is a :class:`~rnnchat.engine.serve_adapter.ModelWorker` (the engine thread in this
process) or a :class:`~rnnchat.engine.serve_procs.ProcessWorker` (the engine in child
processes); the server sees only their common surface.
"""

from __future__ import annotations

from rnnchat.core.errors import RnnchatError, first_line
from rnnchat.engine.serve_adapter import ModelWorker


class Backend:
    """The models a server offers: name -> worker, opened at start: a :class:`ModelWorker` in this
    process (``processes`` 0), or a :class:`~rnnchat.engine.serve_procs.ProcessWorker` over
    ``processes`` engine processes."""

    def __init__(self, names: list[str], max_streams: int, queue: int, skip_unusable: bool = False,
                 weights: str = "auto", processes: int = 0) -> None:
        """``skip_unusable``: a model that cannot be opened or batched is left out and named in
        ``skipped`` (name, reason) instead of stopping the server. ``weights``: the format
        (:mod:`rnnchat.engine.quant`; ``auto`` per model)."""
        from rnnchat.engine.serve_procs import ProcessWorker

        self.workers: dict = {}
        self.skipped: list[tuple[str, str]] = []
        try:
            for name in names:
                try:
                    if processes:
                        self.workers[name] = ProcessWorker(name, weights, processes, max_streams, queue)
                    else:
                        from rnnchat.engine.runtime import open_engine

                        engine, _path = open_engine(name, "cpu", weights=weights)
                        self.workers[name] = ModelWorker(engine, max_streams, queue)
                except RnnchatError as exc:
                    if not skip_unusable:
                        raise RnnchatError(f"cannot serve {name!r}: {first_line(exc)}") from None
                    self.skipped.append((name, first_line(exc)))
        except BaseException:
            self.close()
            raise

    def meta(self, name: str) -> dict:
        return self.workers[name].meta

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()

    def close(self) -> None:
        for worker in self.workers.values():
            worker.close()
