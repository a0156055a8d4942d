"""Activations of every layer's quantities (state, gates) for a text, read from a given state.

This is the engine API that ``rnnchat probe`` and the chat inspector use. It is
off the generation path: it re-reads text through the model's own layers (each
layer's fused ``forward`` for a chunk of characters, plus the quantities the
cell exposes, see :mod:`rnnchat.engine.probe_cells`); it never changes the
state it is given, and it costs nothing while it is not called. Call it on the
thread that owns the model (the engine's thread).

    probe = Probe(model)
    probe.quantities()                      # [Quantity(layer=1, name="c", kind="state", size=512), ...]
    acts, state = probe.activations(ids, state, select=[(2, "c")])
    acts[(2, "c")]                          # numpy float32 [T, 512]: the cell state after each character
    strongest_at(acts, t=10)                # [(2, "c", 442, -3.1), ...]: the most active units at a character

Layers are numbered from 1 (the first layer reads the embedding), units from 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from rnnchat.engine.states import clone_state
from rnnchat.engine.probe_cells import DESCRIPTIONS, reader_for
from rnnchat.core.errors import RnnchatError

CHUNK = 1024  # characters per chunk: bounded memory whatever the text's length
Key = tuple[int, str]  # (layer from 1, quantity name)


@dataclass(frozen=True)
class Quantity:
    layer: int
    name: str
    kind: str  # "state", "gate" (values in [0, 1]) or "value"
    size: int  # units; known after the first chunk for plugin cells (0 before)
    how: str  # "builtin", "contract" or "state" (a cell without the contract)

    @property
    def description(self) -> str:
        return DESCRIPTIONS.get(self.name, self.kind) if self.how == "builtin" else self.kind


class Probe:
    def __init__(self, model) -> None:
        self.model = model
        self.readers = [reader_for(layer) for layer in model.layers]

    def quantities(self) -> list[Quantity]:
        out = []
        for i, r in enumerate(self.readers):
            size = r.cell.hidden_size if r.how == "builtin" else int(getattr(r.cell, "hidden_size", 0) or 0)
            for name, kind in r.kinds.items():
                out.append(Quantity(i + 1, name, kind, size, r.how))
        return out

    def _check_select(self, select: Iterable[Key] | None) -> set[Key] | None:
        if select is None:
            return None
        select = set(select)
        known = {(q.layer, q.name) for q in self.quantities()}
        unknown = sorted(select - known)
        if unknown:
            layer, name = unknown[0]
            raise RnnchatError(f"layer {layer} has no quantity {name!r}; known: "
                               + ", ".join(f"{lay}:{n}" for lay, n in sorted(known)))
        return select

    def chunks(self, ids, state=None, select: Iterable[Key] | None = None,
               chunk: int = CHUNK) -> Iterator[tuple[int, dict[Key, np.ndarray], list]]:
        """Yield (start, {(layer, name): float32 [t, K]}, state after the chunk) chunk by chunk."""
        select = self._check_select(select)
        model = self.model
        ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
        if ids.dim() != 1:
            raise ValueError("ids must be one sequence of character ids")
        device = model.embedding.weight.device
        state = list(clone_state(state if state is not None else model.initial_state(1)))
        with torch.inference_mode():
            for start in range(0, ids.numel(), chunk):
                x = model.embedding(ids[start:start + chunk].to(device).unsqueeze(0))
                out: dict[Key, np.ndarray] = {}
                for i, reader in enumerate(self.readers):
                    if i:
                        x = model.drop(x)
                    x, state[i], found = reader.run(x, state[i])
                    for name, value in found.items():
                        if select is None or (i + 1, name) in select:
                            out[(i + 1, name)] = value[0].float().cpu().numpy()
                yield start, out, state

    def activations(self, ids, state=None, select: Iterable[Key] | None = None):
        """({(layer, name): float32 [T, K]}, state after the text) for a short text (a chat transcript)."""
        parts: dict[Key, list[np.ndarray]] = {}
        final = state
        for _, out, final in self.chunks(ids, state, select):
            for key, value in out.items():
                parts.setdefault(key, []).append(value)
        if final is state:
            final = clone_state(state if state is not None else self.model.initial_state(1))
        return {k: np.concatenate(v) for k, v in parts.items()}, final


def strongest_at(acts: dict[Key, np.ndarray], t: int, count: int = 8) -> list[tuple[int, str, int, float]]:
    """The ``count`` units most active at character ``t``: (layer, name, index, value), largest |value| first.

    For the inspector's panel; ``acts`` is what :meth:`Probe.activations` returns.
    """
    rows = []
    for (layer, name), block in acts.items():
        if not 0 <= t < len(block):
            raise IndexError(f"character {t} is outside the {len(block)} read")
        row = block[t]
        for j in np.argsort(-np.abs(row), kind="stable")[:count]:
            rows.append((layer, name, int(j), float(row[j])))
    rows.sort(key=lambda r: -abs(r[3]))
    return rows[:count]
