"""``rnnchat install`` / ``rnnchat uninstall``: pip, run by the very Python that runs rnnchat.

Users who installed rnnchat with ``pipx`` or ``uv tool`` have no other easy way
to reach its environment; a plugin installed anywhere else is invisible to it.
Where that environment has no pip (``uv tool`` makes none), ``uv pip`` is used
with ``--python`` pointing at it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import click

from rnnchat.errors import RnnchatError

PROTECTED = {"rnnchat"}


def _installer() -> tuple[list[str], list[str]]:
    """(command prefix, extra arguments) that install into this interpreter's environment."""
    probe = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    if probe.returncode == 0:
        return [sys.executable, "-m", "pip"], []
    uv = shutil.which("uv")
    if uv:
        return [uv, "pip"], ["--python", sys.executable]
    raise RnnchatError(f"pip is not available in rnnchat's environment ({sys.prefix}); "
                       f"run `{sys.executable} -m ensurepip` or install uv, then try again")


def _run(action: str, args: list[str]) -> None:
    prefix, extra = _installer()
    if action == "uninstall" and not extra:
        args = ["-y", *args]  # pip asks for confirmation; uv pip does not
    cmd = [*prefix, action, *args, *extra]
    try:
        code = subprocess.run(cmd).returncode
    except OSError as exc:
        raise RnnchatError(f"could not run {' '.join(prefix)}: {exc.strerror or exc}") from None
    if code != 0:
        raise RnnchatError(f"{' '.join(['pip' if not extra else 'uv pip', action, *args])} failed with "
                           f"status {code} (see its messages above)")


def _names(packages) -> list[str]:
    out = []
    for p in packages:
        if not p.strip():
            raise RnnchatError("empty package name")
        out.append(p)
    return out


@click.command()
@click.argument("packages", nargs=-1)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade the packages to the newest version.")
@click.option("-e", "--editable", "editable", multiple=True, metavar="PATH",
              help="Install a local folder in editable mode (plugin development).")
@click.option("--force-reinstall", is_flag=True, help="Reinstall even if already up to date.")
@click.option("--no-cache-dir", is_flag=True, help="Do not use pip's cache.")
def install(packages, upgrade, editable, force_reinstall, no_cache_dir):
    """Install PACKAGES (plugins, usually rnnchat-*) into the environment rnnchat runs in.

    PACKAGES are anything pip accepts: a name, name==version, a folder, a wheel.
    """
    if not packages and not editable:
        raise click.UsageError("name at least one package, e.g. `rnnchat install rnnchat-mingru`")
    args = _names(packages)
    for path in editable:
        args += ["-e", path]
    if upgrade:
        args.append("--upgrade")
    if force_reinstall:
        args.append("--force-reinstall")
    if no_cache_dir:
        args.append("--no-cache-dir")
    _run("install", args)


@click.command()
@click.argument("packages", nargs=-1, required=True)
def uninstall(packages):
    """Uninstall PACKAGES from the environment rnnchat runs in (without asking)."""
    names = _names(packages)
    refused = [p for p in names if p.strip().lower().replace("_", "-") in PROTECTED]
    if refused:
        raise RnnchatError(f"refusing to uninstall {refused[0]} from inside itself; "
                           "use the tool you installed it with (pip, pipx, uv tool)")
    _run("uninstall", names)
