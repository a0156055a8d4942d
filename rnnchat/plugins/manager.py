"""The plugin host: loads built-ins and the ``rnnchat`` entry-point group, one plugin at a time.

A plugin that fails to import, has a bad hook, raises inside a hook, or registers
something invalid is recorded with its error and everything it registered is
dropped; the others load. ``RNNCHAT_LOAD_PLUGINS=a,b`` loads only those entry
points (an empty value loads none); ``RNNCHAT_STRICT_PLUGINS=1`` turns any
plugin error into a failure, for plugin developers.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field
from typing import Any

import pluggy

from rnnchat.errors import PluginError
from rnnchat.plugins import hookspecs
from rnnchat.plugins.specs import CellSpec, CheckpointSpec, CorpusSpec

GROUP = "rnnchat"
KINDS = {"cells": CellSpec, "checkpoints": CheckpointSpec, "corpora": CorpusSpec}
SPEC_NAMES = {"register_cells", "register_checkpoints", "register_corpora", "register_commands"}
BUILTINS = ["rnnchat.default_plugins.cells", "rnnchat.default_plugins.checkpoints",
            "rnnchat.default_plugins.corpora"]


@dataclass
class PluginInfo:
    name: str
    version: str | None = None
    dist: str | None = None
    builtin: bool = False
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    loaded: bool = False

    def as_dict(self) -> dict:
        return {"name": self.name, "version": self.version, "builtin": self.builtin,
                "loaded": self.loaded, "registered": self.registered, "errors": self.errors}


def strict() -> bool:
    return os.environ.get("RNNCHAT_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


class PluginHost:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("rnnchat")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.cells: dict[str, CellSpec] = {}
        self.checkpoints: dict[str, CheckpointSpec] = {}
        self.corpora: dict[str, CorpusSpec] = {}
        self.owner: dict[tuple[str, str], str] = {}  # (kind, name) -> plugin name
        self._modules: dict[str, Any] = {}
        self._verified = False

    # ---- loading -------------------------------------------------------
    def load(self) -> "PluginHost":
        for module_name in BUILTINS:
            info = PluginInfo(module_name.rsplit(".", 1)[-1], builtin=True,
                              version=_own_version(), dist="rnnchat")
            info.name = f"rnnchat.{info.name}"
            self._load_one(info, lambda m=module_name: importlib.import_module(m))
        for ep in self._entry_points():
            dist = getattr(ep, "dist", None)
            info = PluginInfo(ep.name, version=dist.version if dist else None,
                              dist=dist.metadata["Name"] if dist else None)
            self._load_one(info, ep.load)
        return self

    def _entry_points(self):
        eps = list(importlib.metadata.entry_points(group=GROUP))
        allow = os.environ.get("RNNCHAT_LOAD_PLUGINS")
        if allow is not None:
            wanted = {n.strip() for n in allow.split(",") if n.strip()}
            eps = [ep for ep in eps if ep.name in wanted]
        seen, unique = set(), []
        for ep in eps:
            if ep.name not in seen:
                seen.add(ep.name)
                unique.append(ep)
        return unique

    def _load_one(self, info: PluginInfo, loader) -> None:
        if info.name in self.plugins:
            info.errors.append(f"a plugin named {info.name!r} is already loaded")
            return self._fail(info)
        self.plugins[info.name] = info
        try:
            module = loader()
            self._check_hooks(module)
            self.pm.register(module, name=info.name)
        except Exception as exc:  # noqa: BLE001 - any plugin failure is recorded, never fatal
            info.errors.append(f"failed to load: {type(exc).__name__}: {exc}")
            return self._fail(info)
        self._modules[info.name] = module
        pending: dict[str, list] = {kind: [] for kind in KINDS}
        try:
            for kind, spec_type in KINDS.items():
                impl = getattr(module, f"register_{kind}", None)
                if impl is None or not _is_impl(impl):
                    continue
                register = _collector(info.name, kind, spec_type, pending[kind])
                result = impl(register)
                if result is not None:
                    raise PluginError(f"register_{kind} returned {type(result).__name__}; "
                                      "hooks must call register() and return None")
        except Exception as exc:  # noqa: BLE001
            info.errors.append(f"hook failed: {type(exc).__name__}: {exc}")
            self.pm.unregister(name=info.name)
            return self._fail(info)
        info.loaded = True
        for kind, specs in pending.items():
            table = getattr(self, kind)
            for spec in specs:
                other = self.owner.get((kind, spec.name))
                if other is not None:
                    msg = (f"{kind[:-1] if kind != 'corpora' else 'corpus'} {spec.name!r} from "
                           f"{info.name} refused: already registered by {other}")
                    info.errors.append(msg)
                    if strict():
                        raise PluginError(msg)
                    continue
                table[spec.name] = spec
                self.owner[(kind, spec.name)] = info.name
                info.registered.setdefault(kind, []).append(spec.name)

    def _fail(self, info: PluginInfo) -> None:
        info.loaded = False
        if strict():
            raise PluginError(f"plugin {info.name}: {'; '.join(info.errors)}")

    def _check_hooks(self, module) -> None:
        for attr in dir(module):
            value = getattr(module, attr, None)
            if _is_impl(value) and attr not in SPEC_NAMES:
                raise PluginError(f"unknown hook {attr!r} (known: {', '.join(sorted(SPEC_NAMES))})")

    # ---- verification ----------------------------------------------------
    def verify_cells(self) -> None:
        """Import every third-party cell and check it is a proper cell (imports torch).

        A plugin whose cell is not a ``torch.nn.Module`` class with ``initial_state``,
        ``forward`` and ``step`` is skipped whole, with its error recorded.
        """
        if self._verified:
            return
        self._verified = True
        for name, spec in list(self.cells.items()):
            owner = self.owner.get(("cells", name))
            if owner is None or self.plugins[owner].builtin:
                continue
            try:
                spec.load()
            except PluginError as exc:
                self.plugins[owner].errors.append(f"cell {name!r} is not a proper cell: {exc}")
                self._drop(owner)
                if strict():
                    raise

    def _drop(self, plugin: str) -> None:
        info = self.plugins[plugin]
        info.loaded = False
        for kind, names in info.registered.items():
            table = getattr(self, kind, None)
            for n in names:
                if table is not None:
                    table.pop(n, None)
                self.owner.pop((kind, n), None)
        info.registered = {}

    # ---- commands ------------------------------------------------------
    def add_commands(self, cli) -> None:
        for name, module in list(self._modules.items()):
            impl = getattr(module, "register_commands", None)
            if impl is None or not _is_impl(impl) or not self.plugins[name].loaded:
                continue
            before = dict(cli.commands)
            try:
                impl(cli)
                replaced = sorted(n for n, cmd in before.items() if cli.commands.get(n) is not cmd)
                if replaced:
                    raise PluginError(f"refused to replace existing command(s): {', '.join(replaced)}")
            except Exception as exc:  # noqa: BLE001
                for added in set(cli.commands) - set(before):
                    cli.commands.pop(added, None)
                cli.commands.update(before)
                self.plugins[name].errors.append(f"register_commands failed: {type(exc).__name__}: {exc}")
                if strict():
                    raise PluginError(f"plugin {name}: {exc}") from exc
                continue
            added = sorted(set(cli.commands) - set(before))
            if added:
                self.plugins[name].registered.setdefault("commands", []).extend(added)

    # ---- lookups -------------------------------------------------------
    def cell(self, name: str) -> CellSpec:
        self.verify_cells()
        try:
            return self.cells[name]
        except KeyError:
            raise PluginError(f"cell {name!r} is not installed; installed cells: "
                              f"{', '.join(sorted(self.cells)) or 'none'}") from None

    def owner_of(self, kind: str, name: str) -> str | None:
        return self.owner.get((kind, name))

    def dist_of(self, kind: str, name: str) -> str | None:
        """The distribution (pip package) that registered ``name``."""
        owner = self.owner.get((kind, name))
        return self.plugins[owner].dist if owner else None


def _is_impl(func) -> bool:
    return callable(func) and hasattr(func, "rnnchat_impl")


def _collector(plugin: str, kind: str, spec_type, sink: list):
    def register(spec):
        if not isinstance(spec, spec_type):
            raise PluginError(f"register_{kind} expects a {spec_type.__name__}, got {type(spec).__name__}")
        spec.validate()
        if any(s.name == spec.name for s in sink):
            raise PluginError(f"{spec.name!r} registered twice by {plugin}")
        sink.append(spec)
    return register


def _own_version() -> str:
    from rnnchat import __version__
    return __version__


_HOST: PluginHost | None = None


def get_host(reload: bool = False) -> PluginHost:
    """The process-wide plugin host, loaded on first use."""
    global _HOST
    if _HOST is None or reload:
        _HOST = PluginHost().load()
    return _HOST
