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

from rnnchat.core.errors import RnnchatError

PROTECTED = {"rnnchat"}  # canonical names (PEP 503) that `rnnchat uninstall` never removes


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


def _project(arg: str) -> str:
    """The canonical project name of one ``uninstall`` argument, parsed as pip parses a requirement.

    Only a plain requirement for another project passes (``name``, ``Name[extra]``, ``name==1.0``);
    options (``-r FILE``), URLs, paths, markers and rnnchat itself, however spelt, are refused.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    shown = ascii(arg)
    if arg.lstrip().startswith("-"):
        raise RnnchatError(f"refusing {shown}: `rnnchat uninstall` takes package names, not pip options")
    try:
        req = Requirement(arg)
    except InvalidRequirement:
        raise RnnchatError(f"refusing {shown}: not a package name (give names such as rnnchat-mingru)") from None
    name = canonicalize_name(req.name)
    if name in PROTECTED:
        raise RnnchatError(f"refusing to uninstall {shown} (that is rnnchat) from inside itself; "
                           "use the tool you installed it with (pip, pipx, uv tool)")
    if req.url or req.marker is not None:
        raise RnnchatError(f"refusing {shown}: give the plain package name ({name}), without a URL or marker")
    return name


@click.command()
@click.argument("packages", nargs=-1, required=True)
def uninstall(packages):
    """Uninstall PACKAGES from the environment rnnchat runs in (without asking).

    PACKAGES are plain package names (a version or extras are accepted and ignored, as pip does);
    rnnchat itself is refused: remove it with the tool you installed it with.
    """
    names = [_project(p) for p in _names(packages)]
    _run("uninstall", names)
