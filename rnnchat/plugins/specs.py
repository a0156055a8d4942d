"""What plugins register. Plain dataclasses; nothing here imports torch."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rnnchat.core.errors import PluginError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")


def check_name(kind: str, name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise PluginError(
            f"{kind} name {name!r} is invalid: use 1-64 lowercase letters, digits, '-', '_' or '.'"
        )
    return name


@dataclass(frozen=True)
class CellSpec:
    """A recurrent cell.

    ``factory`` is the cell class (a ``torch.nn.Module`` subclass) or a string
    ``"package.module:ClassName"`` imported only when the cell is first used, so
    that registering a cell does not import torch.
    """

    name: str
    factory: Any
    description: str = ""
    fast_path: Any = None  # optional "module:function" building a fast CPU stepper

    def validate(self) -> None:
        check_name("cell", self.name)
        if isinstance(self.factory, str):
            if ":" not in self.factory:
                raise PluginError(f"cell {self.name!r}: factory string must look like 'module:Class'")
        elif not callable(self.factory):
            raise PluginError(f"cell {self.name!r}: factory must be a class or a 'module:Class' string")

    def load(self) -> Callable:
        """The cell class, importing it if it was given as a string."""
        factory = self.factory
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            try:
                factory = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError) as exc:
                raise PluginError(f"cell {self.name!r}: cannot import {self.factory}: {exc}") from exc
        if not (isinstance(factory, type) and _is_torch_module(factory)):
            raise PluginError(f"cell {self.name!r}: {factory!r} is not a torch.nn.Module subclass")
        for method in ("initial_state", "forward", "step"):
            if not callable(getattr(factory, method, None)):
                raise PluginError(f"cell {self.name!r}: {factory.__name__} has no {method}() method")
        return factory


@dataclass(frozen=True)
class CheckpointSpec:
    """A trained model file (``.safetensors``) under a short name."""

    name: str
    path: Path | str
    description: str = ""

    def validate(self) -> None:
        check_name("checkpoint", self.name)
        if not isinstance(self.path, (str, Path)) or not str(self.path):
            raise PluginError(f"checkpoint {self.name!r}: path must be a file path")


@dataclass(frozen=True)
class CorpusSpec:
    """A named training text: a local ``path``, or a ``url`` to download, with its sha256."""

    name: str
    description: str = ""
    path: Path | str | None = None
    url: str | None = None
    sha256: str | None = None
    licence: str = ""
    size: int | None = None
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        check_name("corpus", self.name)
        if self.path is None and self.url is None:
            raise PluginError(f"corpus {self.name!r}: give a path or a url")
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise PluginError(f"corpus {self.name!r}: sha256 must be 64 lowercase hex digits")


def _is_torch_module(cls: type) -> bool:
    """True for a subclass of ``torch.nn.Module``, told from its class hierarchy (no torch import here:
    the plugin layer stays torch-free; a cell class that subclasses it has loaded torch already)."""
    return any(c.__name__ == "Module" and c.__module__ == "torch.nn.modules.module" for c in cls.__mro__)
