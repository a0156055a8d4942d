"""A training run's settings, checked in neutral words (the CLI maps them to its option names)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from rnnchat.core.errors import CorpusError, RnnchatError

# How a setting is named in an engine message; the CLI renders the same messages with its flags.
NEUTRAL_NAMES = {
    "cell": "the cell", "layers": "the number of layers", "hidden": "the hidden size",
    "embedding": "the embedding size", "dropout": "the dropout", "seq_len": "the sequence length",
    "batch_size": "the batch size", "lr": "the learning rate", "steps": "the number of steps",
    "budget": "the time budget", "val_fraction": "the validation fraction", "eval_every": "the evaluation interval",
    "save_every": "the save interval", "precision": "the precision", "max_vocab": "the vocabulary size",
    "warmup": "the warmup", "eval_streams": "the evaluation streams",
}


class ConfigError(RnnchatError):
    """A setting out of range. ``template`` names settings as ``{seq_len}``; ``str()`` gives the neutral
    wording, :meth:`render` another one (the CLI's ``--seq-len``)."""

    def __init__(self, template: str, **values) -> None:
        self.template, self.values = template, values
        super().__init__(self.render(NEUTRAL_NAMES))

    def render(self, names: dict[str, str]) -> str:
        table = {k: names.get(k, NEUTRAL_NAMES.get(k, k)) for k in NEUTRAL_NAMES}
        return self.template.format(**table, **self.values)


class CorpusSizeError(ConfigError, CorpusError):
    """A corpus too small for the sequence length and batch."""


@dataclass
class TrainConfig:
    cell: str = "lstm"
    layers: int = 2
    hidden: int = 384
    embedding: int = 64
    dropout: float = 0.0
    cell_options: dict = field(default_factory=dict)
    seq_len: int = 128
    batch_size: int = 16
    lr: float = 5e-3
    min_lr_ratio: float = 0.05
    warmup: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    steps: int | None = None
    budget: float | None = None  # seconds of the whole command (start-up, steps, evaluations, re-score, save)
    val_fraction: float = 0.1
    eval_every: int = 200
    eval_streams: int = 16
    save_every: int = 200
    seed: int = 1337
    carry_state: bool = True  # char-rnn's contiguous streams with the state carried (else random windows)
    precision: str = "fp32"  # fp32 | bf16 | fp16
    storage_dtype: str = "float32"
    chat: dict = field(default_factory=lambda: {"template": "{text}", "stop": ["\n\n"]})
    sample_chars: int = 200
    init_from: dict | None = None  # a fine-tune: the model it started from (rnnchat.engine.finetune.plan)
    about: dict = field(default_factory=dict)  # the checkpoint's "hint" and "description" (checkpoint_fields.py)

    def validate(self) -> "TrainConfig":
        for k in ("layers", "hidden", "embedding", "seq_len", "batch_size", "eval_every", "save_every",
                  "eval_streams"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError("{%s} must be a whole number >= 1, not {v!r}" % k, v=v)
        for k, top in (("hidden", 16384), ("embedding", 16384), ("layers", 64)):
            if getattr(self, k) > top:
                raise ConfigError("{%s} must be at most {top}, not {v}" % k, top=top, v=getattr(self, k))
        for k, lo, hi, lo_open, hi_open in (("dropout", 0.0, 1.0, False, True), ("lr", 0.0, 10.0, True, False),
                                            ("val_fraction", 0.0, 0.5, True, True)):
            v = getattr(self, k)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
                (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
            if not ok:
                span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
                raise ConfigError("{%s} must be in {span}, not {v!r}" % k, span=span, v=v)
        if self.steps is None and self.budget is None:
            raise ConfigError("give {steps} or {budget}")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or self.steps < 1):
            raise ConfigError("{steps} must be a whole number >= 1, not {v!r}", v=self.steps)
        if self.budget is not None and (isinstance(self.budget, bool) or not isinstance(self.budget, (int, float))
                                        or not math.isfinite(self.budget) or self.budget <= 0):
            raise ConfigError("{budget} must be a positive time, not {v!r}", v=self.budget)
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError("{precision} must be fp32, bf16 or fp16, not {v!r}", v=self.precision)
        return self

    def model_config(self, vocab_size: int):
        from rnnchat.engine.model import ModelConfig

        return ModelConfig(cell=self.cell, vocab_size=vocab_size, hidden=self.hidden, layers=self.layers,
                           embedding=self.embedding, dropout=self.dropout, cell_options=dict(self.cell_options))

    def plan(self) -> str:
        """'400 steps', '90s' or '400 steps or 90s, whichever comes first'."""
        parts = ([f"{self.steps} steps"] if self.steps is not None else []) + \
            ([f"{self.budget:g}s"] if self.budget is not None else [])
        return " or ".join(parts) + (", whichever comes first" if len(parts) == 2 else "")


def config_from_dict(saved: dict) -> TrainConfig:
    """A TrainConfig from a saved dict; keys this version does not know are ignored."""
    known = {f.name for f in fields(TrainConfig)}
    saved = dict(saved)
    saved.setdefault("carry_state", False)  # runs saved before carried state existed used random windows
    return TrainConfig(**{k: v for k, v in saved.items() if k in known})
