"""Callbacks a trainer calls at fixed points: no-ops here; tests (tests/train/fault_runner.py) and
other features inject their own, nothing is read from the environment."""

from __future__ import annotations

import hashlib


class TrainHooks:
    """Subclass and override; set ``rnnchat.engine.train_hooks.current`` (the default a new Trainer
    takes) or pass ``hooks=`` to the Trainer."""

    def before_step(self, trainer, step: int) -> None:
        """Called on every rank before step ``step`` (1-based) is computed."""

    def after_run(self, trainer) -> None:
        """Called on every rank when the loop has ended and the state is saved."""


current = TrainHooks()


def weights_sha256(model) -> str:
    """A checksum of a model's weights (names, shapes and float32 values), equal across processes."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()
