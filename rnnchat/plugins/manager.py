"""The plugin host: loads built-ins and the ``rnnchat`` entry-point group, one plugin at a time.

A plugin that fails to import, has a bad or unknown hook, raises inside any hook (including
``register_commands``), registers something invalid, or offers a cell that fails its first check
is recorded with its error and everything it registered is dropped; the others load. Any
``BaseException`` from plugin code is contained (``SystemExit``, ``GeneratorExit``...), except
``KeyboardInterrupt``: the host names the plugin it was running and lets the interrupt end the
command. Plugin code that runs longer than ``guard.SLOW_NOTICE_S`` is named on stderr while it
runs. ``RNNCHAT_LOAD_PLUGINS=a,b`` loads only those entry points (an empty value loads none);
``RNNCHAT_STRICT_PLUGINS=1`` turns any plugin error into a failure, for plugin developers.
"""

from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass, field
from typing import Any

import pluggy

from rnnchat.core import env
from rnnchat.core.errors import PluginError, SettingError
from rnnchat.plugins import hookspecs
from rnnchat.plugins.guard import describe, run_plugin_code
from rnnchat.plugins.specs import CellSpec, CheckpointSpec, CorpusSpec

GROUP = "rnnchat"
KINDS = {"cells": CellSpec, "checkpoints": CheckpointSpec, "corpora": CorpusSpec}
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
    return env.strict_plugins()


class PluginHost:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("rnnchat")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.cells: dict[str, CellSpec] = {}
        self.checkpoints: dict[str, CheckpointSpec] = {}
        self.corpora: dict[str, CorpusSpec] = {}
        self.owner: dict[tuple[str, str], str] = {}  # (kind, name) -> plugin name
        self.failed_cells: dict[str, str] = {}  # cell name -> why its plugin was dropped
        self._modules: dict[str, Any] = {}
        self._verified = False

    # ---- loading -------------------------------------------------------
    def load(self) -> "PluginHost":
        strict()  # a bad RNNCHAT_STRICT_PLUGINS is an error now, not only when a plugin fails
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
        wanted = env.load_plugins()
        if wanted is not None:
            eps = [ep for ep in eps if ep.name in wanted]
        seen, unique = set(), []
        for ep in eps:
            if ep.name not in seen:
                seen.add(ep.name)
                unique.append(ep)
        return unique

    def _run(self, info: PluginInfo, doing: str, failure: str, fn, *args):
        """Run plugin code, contained and watched: (True, result), or (False, None) with the error recorded."""
        try:
            return True, run_plugin_code(info.name, doing, fn, *args)
        except BaseException as exc:  # noqa: BLE001 - SystemExit, GeneratorExit...: the plugin's error
            if isinstance(exc, KeyboardInterrupt) or (info.builtin and isinstance(exc, SettingError)):
                raise  # the user's interrupt; a built-in meeting the user's bad setting (RNNCHAT_HOME...)
            info.errors.append(f"{failure}: {describe(exc)}")
            return False, None

    def _load_one(self, info: PluginInfo, loader) -> None:
        if info.name in self.plugins:
            info.errors.append(f"a plugin named {info.name!r} is already loaded")
            return self._fail(info)
        self.plugins[info.name] = info
        ok, module = self._run(info, "importing", "failed to load", loader)
        if ok:
            ok, _ = self._run(info, "registering", "failed to load", self._register, module, info.name)
        if not ok:
            return self._fail(info)
        self._modules[info.name] = module
        pending: dict[str, list] = {kind: [] for kind in KINDS}
        for kind, spec_type in KINDS.items():
            for impl in self._impls(f"register_{kind}", info.name):
                register = _collector(info.name, kind, spec_type, pending[kind])
                ok, result = self._run(info, f"running register_{kind} of", "hook failed", impl.function, register)
                if ok and result is not None:
                    ok = False
                    info.errors.append(f"hook failed: register_{kind} returned {type(result).__name__}; "
                                       "hooks must call register() and return None")
                if not ok:
                    self.pm.unregister(name=info.name)
                    self._modules.pop(info.name, None)
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

    def _register(self, module, name: str) -> None:
        """pluggy checks the hooks' signatures; ``check_pending`` refuses unknown (misspelt) hooks."""
        self.pm.register(module, name=name)
        try:
            self.pm.check_pending()
        except BaseException:
            self.pm.unregister(name=name)
            raise

    def _impls(self, hook: str, plugin: str) -> list:
        return [i for i in getattr(self.pm.hook, hook).get_hookimpls() if i.plugin_name == plugin]

    def _fail(self, info: PluginInfo) -> None:
        info.loaded = False
        if strict():
            raise PluginError(f"plugin {info.name}: {'; '.join(info.errors)}")

    # ---- verification ----------------------------------------------------
    def verify_cells(self) -> None:
        """Import every third-party cell and try it once at tiny sizes (imports torch).

        A plugin whose cell is not a ``torch.nn.Module`` class with ``initial_state``, ``forward``
        and ``step``, or whose cell fails, returns the wrong shapes or a state that is not tensors
        when tried (``rnnchat.engine.cell_probe``), is dropped whole, with its error recorded.
        """
        if self._verified:
            return
        self._verified = True
        for name, spec in list(self.cells.items()):
            owner = self.owner.get(("cells", name))
            if owner is None or self.plugins[owner].builtin:
                continue
            ok, _ = self._run(self.plugins[owner], f"checking cell {name!r} of", f"cell {name!r} is not a proper cell",
                              _probe, spec)
            if not ok:
                self._drop(owner)
                if strict():
                    raise PluginError(self.failed_cells[name])

    def _drop(self, plugin: str) -> None:
        """Mark ``plugin`` failed and take back everything it registered."""
        info = self.plugins[plugin]
        info.loaded = False
        why = f"its plugin {plugin} failed: {info.errors[-1] if info.errors else 'dropped'}"
        for kind, names in info.registered.items():
            table = getattr(self, kind, None)
            for n in names:
                if kind == "cells":
                    self.failed_cells[n] = why
                if table is not None:
                    table.pop(n, None)
                self.owner.pop((kind, n), None)
        info.registered = {}
        if self.pm.get_plugin(plugin) is not None:
            self.pm.unregister(name=plugin)

    # ---- commands ------------------------------------------------------
    def add_commands(self, cli) -> None:
        """Run each plugin's ``register_commands``; a plugin whose hook fails is dropped whole."""
        for name in list(self._modules):
            info = self.plugins[name]
            for impl in self._impls("register_commands", name) if info.loaded else []:
                before = dict(cli.commands)
                ok, result = self._run(info, "adding the commands of", "register_commands failed",
                                       impl.function, cli)
                replaced = sorted(n for n, cmd in before.items() if cli.commands.get(n) is not cmd)
                if ok and (replaced or result is not None):
                    ok = False
                    info.errors.append("register_commands failed: " + (
                        f"refused to replace existing command(s): {', '.join(replaced)}" if replaced else
                        f"returned {type(result).__name__}; hooks must add commands and return None"))
                added = sorted(set(cli.commands) - set(before))
                if not ok:
                    for n in added:
                        cli.commands.pop(n, None)
                    cli.commands.update(before)
                    self._drop(name)
                    if strict():
                        raise PluginError(f"plugin {name}: {info.errors[-1]}")
                    break
                if added:
                    info.registered.setdefault("commands", []).extend(added)

    # ---- lookups -------------------------------------------------------
    def cell(self, name: str) -> CellSpec:
        self.verify_cells()
        try:
            return self.cells[name]
        except KeyError:
            if name in self.failed_cells:
                raise PluginError(f"cell {name!r} cannot be used: {self.failed_cells[name]}") from None
            raise PluginError(f"cell {name!r} is not installed; installed cells: "
                              f"{', '.join(sorted(self.cells)) or 'none'}") from None

    def plugin_packages(self) -> dict[str, str]:
        """Top-level package -> third-party plugin: its entry point's and its cells' modules."""
        shared = {"rnnchat", "torch", "numpy", *sys.stdlib_module_names}
        found = {}
        for name, module in self._modules.items():
            if not self.plugins[name].builtin:
                found[module.__name__.partition(".")[0]] = name
        for (kind, cell), owner in self.owner.items():
            if kind == "cells" and not self.plugins[owner].builtin:
                spec = self.cells[cell]
                for where in (spec.factory, spec.fast_path):
                    module = where.partition(":")[0] if isinstance(where, str) else getattr(where, "__module__", None)
                    if module:
                        found.setdefault(module.partition(".")[0], owner)
        return {top: owner for top, owner in found.items() if top not in shared}

    def owner_of(self, kind: str, name: str) -> str | None:
        return self.owner.get((kind, name))

    def dist_of(self, kind: str, name: str) -> str | None:
        """The distribution (pip package) that registered ``name``."""
        owner = self.owner.get((kind, name))
        return self.plugins[owner].dist if owner else None


def _collector(plugin: str, kind: str, spec_type, sink: list):
    def register(spec):
        if not isinstance(spec, spec_type):
            raise PluginError(f"register_{kind} expects a {spec_type.__name__}, got {type(spec).__name__}")
        spec.validate()
        if any(s.name == spec.name for s in sink):
            raise PluginError(f"{spec.name!r} registered twice by {plugin}")
        sink.append(spec)
    return register


def blame(exc: BaseException) -> str | None:
    """The third-party plugin whose code raised ``exc`` (innermost frame of one of its packages)."""
    host = _HOST
    if host is None:
        return None
    packages = host.plugin_packages()
    found, seen = None, set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        tb = exc.__traceback__
        while tb is not None:
            top = str(tb.tb_frame.f_globals.get("__name__", "")).partition(".")[0]
            found = packages.get(top, found)
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__
    return found


def plugin_prefix(exc: BaseException) -> str:
    """``"plugin NAME failed: "`` when a third-party plugin's code raised ``exc``, else ``""``."""
    plugin = blame(exc)
    return f"plugin {plugin} failed: " if plugin else ""


def _probe(spec: CellSpec) -> None:
    from rnnchat.engine.cell_probe import probe_cell, rng_kept  # torch is imported only when a cell is checked

    with rng_kept():  # importing the plugin's cell may draw random numbers too
        probe_cell(spec.name, spec.load())


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
