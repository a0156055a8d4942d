"""``rnnchat models get NAME|URL``: download a checkpoint, verify it, register it (torch-free).

A catalog model (``rnnchat/store/catalog.json``'s ``models``: name, url, sha256, size) or any URL with
``--sha256``. The file is written to ``<data dir>/models/NAME.safetensors.part``; an interrupted
transfer is resumed from there with an HTTP Range request by the next ``get``. Only a file with
the expected size and sha256 that reads as a valid checkpoint (``checkpoint_meta``) is renamed
to ``NAME.safetensors``, where ``rnnchat models`` finds it.
"""

from __future__ import annotations

import os
import re

import click

from rnnchat.core.errors import CheckpointError, RnnchatError, first_line

# hashlib, json, importlib.resources, urllib and the plugin specs (pluggy) are imported where
# used: this module is imported by every ``rnnchat`` command line (to register ``models get``).

MAX_MODEL_BYTES = 8 << 30  # the largest checkpoint rnnchat reads (checkpoint_meta.MAX_CHECKPOINT)
_HEX = re.compile(r"^[0-9a-f]{64}$")


def catalog_models() -> dict[str, dict]:
    """The catalog's models, each checked by type (a wrong entry is left out)."""
    import json
    from importlib import resources

    from rnnchat.plugins.specs import NAME_RE

    data = json.loads(resources.files("rnnchat.store").joinpath("catalog.json").read_text(encoding="utf-8"))
    out = {}
    for e in data.get("models") or []:
        if (isinstance(e, dict) and isinstance(e.get("name"), str) and NAME_RE.match(e["name"])
                and isinstance(e.get("url"), str) and re.match(r"^https?://", e["url"])
                and isinstance(e.get("sha256"), str) and _HEX.match(e["sha256"])
                and isinstance(e.get("size"), int) and not isinstance(e["size"], bool) and 0 < e["size"] <= MAX_MODEL_BYTES):
            out[e["name"]] = e
    return out


def _sha256_file(path) -> str:
    import hashlib

    from rnnchat.core.safe_files import open_regular

    h = hashlib.sha256()
    with open_regular(path, "checkpoint") as (fh, _):
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_source(source: str, sha256: str | None, name: str | None) -> tuple[str, str, str, int | None]:
    """(name, url, sha256, size or None) for a catalog name or a URL."""
    from rnnchat.plugins.specs import NAME_RE

    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not _HEX.match(sha256):
            raise RnnchatError("--sha256 must be 64 hexadecimal digits")
    if re.match(r"^https?://", source):
        from pathlib import PurePosixPath
        from urllib.parse import unquote, urlparse

        if sha256 is None:
            raise RnnchatError("a model given by URL needs --sha256 HEX (the checksum its publisher gives)")
        stem = PurePosixPath(unquote(urlparse(source).path)).name.removesuffix(".safetensors")
        name = name or stem
        if not NAME_RE.match(name or ""):
            raise RnnchatError(f"cannot name the model after {stem!r}: give --name NAME (letters, digits, - and _)")
        return name, source, sha256, None
    if "://" in source:
        raise RnnchatError(f"cannot download {source!r}: only http:// and https:// URLs")
    known = catalog_models()
    entry = known.get(source)
    if entry is None:
        raise RnnchatError(f"no model named {source!r} in the catalog (known: {', '.join(sorted(known)) or 'none'}); "
                           "give a URL with --sha256 instead")
    if sha256 is not None and sha256 != entry["sha256"]:
        raise RnnchatError(f"--sha256 differs from the catalog's for {source!r} ({entry['sha256'][:12]}…)")
    return name or source, entry["url"], entry["sha256"], entry["size"]


@click.command("get")
@click.argument("source")
@click.option("--sha256", help="The file's SHA-256 (required with a URL; checked against the catalog's otherwise).")
@click.option("--name", help="Register it under this name (default: the catalog name or the URL's file name).")
def get(source, sha256, name):
    """Download a model (a catalog NAME, or a URL with --sha256), verify it and register it."""
    from rnnchat.store.checkpoint_meta import describe
    from rnnchat.store.download import fetch
    from rnnchat.core.paths import models_dir
    from rnnchat.plugins.specs import NAME_RE

    if name is not None and not NAME_RE.match(name):
        raise RnnchatError(f"--name must be letters, digits, - and _, not {name!r}")
    name, url, sha256, size = resolve_source(source, sha256, name)
    folder = models_dir()
    target = folder / f"{name}.safetensors"
    if target.exists() or target.is_symlink():
        if _sha256_file(target) == sha256:
            click.echo(f"{name} is already here: {target}")
            return
        raise RnnchatError(f"{target} exists with another sha256; remove it first or give --name")
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{name}.safetensors.part"
    where = f"could not download model {name!r} from {url}"
    fetch(url, part, sha256=sha256, size=size, limit=size or MAX_MODEL_BYTES, where=where, error=CheckpointError,
          resume=True)
    try:
        info = describe(part)
    except (RnnchatError, ValueError) as exc:
        os.unlink(part)
        raise CheckpointError(f"{url} is not a usable rnnchat checkpoint ({first_line(exc)}); removed") from None
    os.replace(part, target)
    click.echo(f"saved {name}: {info['cell']} {info['layers']}x{info['hidden']}, {info['size_bytes']:,} bytes, "
               f"sha256 verified, in {target}")
