"""The character model: embedding -> N recurrent cells (dropout between) -> linear head."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from rnnchat.engine.cell_probe import check_built_layers
from rnnchat.engine.states import state_map  # noqa: F401 - where the engine's modules import it from
from rnnchat.core.errors import PluginError


@dataclass
class ModelConfig:
    cell: str
    vocab_size: int
    hidden: int = 256
    layers: int = 2
    embedding: int = 64
    dropout: float = 0.0
    cell_options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def registered_cell(name: str) -> type:
    """The cell class registered under ``name`` (through the plugin host)."""
    from rnnchat.plugins.manager import get_host

    return get_host().cell(name).load()


class CharRNN(nn.Module):
    """``cell_class`` builds each layer: the caller resolves it (``registered_cell(config.cell)``
    for a registered cell), so the model itself looks nothing up."""

    def __init__(self, config: ModelConfig, cell_class: type) -> None:
        super().__init__()
        self.config = config
        # The table is filled as nn.Embedding fills it (the same random numbers), except on the meta
        # device: there torch's normal_ goes through its Python reference, whose first use imports
        # torch._dynamo (1.3 s of every model load, for a skeleton that holds no numbers).
        weight = torch.empty(config.vocab_size, config.embedding)
        if weight.device.type != "meta":
            nn.init.normal_(weight)
        self.embedding = nn.Embedding(config.vocab_size, config.embedding, _weight=weight)
        sizes = [config.embedding] + [config.hidden] * config.layers
        try:
            cells = [cell_class(sizes[i], config.hidden, **config.cell_options) for i in range(config.layers)]
        except (TypeError, ValueError) as exc:
            from rnnchat.plugins.manager import get_host  # only to name the plugin in the error

            raise PluginError(f"cell {config.cell!r} ({get_host().owner_of('cells', config.cell)}) cannot be built "
                              f"with options {config.cell_options}: {exc}") from None
        check_built_layers(config.cell, cells, sizes, config.hidden)  # a third-party cell: named if it fails
        self.layers = nn.ModuleList(cells)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def initial_state(self, batch: int = 1) -> list:
        return [layer.initial_state(batch) for layer in self.layers]

    def forward(self, ids: torch.Tensor, state: list | None = None, last_only: bool = False):
        """ids[B,T] -> logits[B,T,V] (``last_only``: [B,1,V], the last position's), new state."""
        if state is None:
            state = self.initial_state(ids.shape[0])
        x = self.embedding(ids)
        new_state = []
        for i, layer in enumerate(self.layers):
            if i:
                x = self.drop(x)
            x, s = layer(x, state[i])
            new_state.append(s)
        if last_only:
            x = x[:, -1:]
        return self.head(self.drop(x)), new_state

    def step(self, ids: torch.Tensor, state: list):
        """ids[B] -> logits[B,V], new state: one character."""
        x = self.embedding(ids)
        new_state = []
        for i, layer in enumerate(self.layers):
            x, s = layer.step(x, state[i])
            new_state.append(s)
        return self.head(x), new_state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
