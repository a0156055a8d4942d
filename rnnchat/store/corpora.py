"""Named corpora: the project's catalog, downloaded and user-added texts (torch-free).

* The catalog is ``rnnchat/store/catalog.json`` (documented in ``corpora/README.md``);
  it reaches the plugin host through the built-in plugin, beside any corpora
  third-party plugins register.
* ``rnnchat corpora get NAME`` downloads a catalog corpus into
  ``<data dir>/corpora/NAME.txt``: streamed to a temp file, its sha256 checked,
  then renamed into place, so a failed or interrupted download leaves nothing.
  ``RNNCHAT_CORPUS_MIRROR=URL`` fetches ``URL/NAME.txt`` instead (a mirror;
  tests point it at a local server).
* ``rnnchat corpora add PATH`` registers a local file under a name, in
  ``<data dir>/corpora/local.json``; the file stays where it is.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from importlib import resources
from pathlib import Path

from rnnchat.core import env

from rnnchat.core import paths
from rnnchat.core.atomic import atomic_path, write_bytes
from rnnchat.core.errors import CorpusError, first_line
from rnnchat.plugins.specs import NAME_RE, CorpusSpec
from rnnchat.core.safe_files import FileTooLarge, NotRegularFile, open_regular, read_bounded, read_regular
from rnnchat.core.vocab import normalize

MAX_CORPUS_BYTES = 1 << 30  # 1 GiB: larger texts are refused, never swapped through


# ---- reading a text ---------------------------------------------------------

def read_text(path: str | Path) -> tuple[str, str]:
    """Return (NFC text, sha256 of the file's bytes) or raise CorpusError with one clear line."""
    path = Path(path)
    try:
        with open_regular(path, "corpus") as (fh, size):
            if size > MAX_CORPUS_BYTES:
                raise CorpusError(f"{path} is {size / 2**30:.1f} GiB; the limit is 1 GiB: split it or sample from it")
            data = read_bounded(fh, MAX_CORPUS_BYTES, path, "corpus")
    except FileNotFoundError:
        raise CorpusError(f"corpus {path} does not exist") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder; give a UTF-8 text file") from None
    except NotRegularFile as exc:
        if "a folder" in str(exc):
            raise CorpusError(f"{path} is a folder; give a UTF-8 text file") from None
        raise CorpusError(f"{exc}; give a UTF-8 text file") from None
    except FileTooLarge:
        raise CorpusError(f"{path} grew past 1 GiB while it was read; the limit is 1 GiB") from None
    except PermissionError:
        raise CorpusError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from None
    return decode_text(data, path), hashlib.sha256(data).hexdigest()


def decode_text(data: bytes, path: str | Path) -> str:
    if not data.strip():
        raise CorpusError(f"{path} is empty; give a UTF-8 text file with some text in it")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CorpusError(f"{path} looks binary (a NUL byte at byte offset {nul}); give a UTF-8 text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CorpusError(f"{path} is not UTF-8: invalid byte 0x{data[exc.start]:02x} at byte offset "
                          f"{exc.start} (line {line}); convert it, e.g. iconv -f latin1 -t utf-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return normalize(text)


# ---- the catalog ------------------------------------------------------------

def catalog_entries() -> list[dict]:
    """The entries of ``rnnchat/store/catalog.json``, as written there."""
    text = resources.files("rnnchat.store").joinpath("catalog.json").read_text(encoding="utf-8")
    return json.loads(text)["corpora"]


def catalog_specs() -> list[CorpusSpec]:
    """The catalog as specs for the plugin host (registered by the built-in plugin)."""
    specs = []
    for entry in catalog_entries():
        specs.append(CorpusSpec(name=entry["name"], description=entry.get("description", ""),
                                url=entry.get("url"), sha256=entry.get("sha256"), licence=entry.get("licence", ""),
                                size=entry.get("size"),
                                extra={"download": entry.get("download", "direct"), "chars": entry.get("chars")}))
    return specs


def _known() -> dict[str, CorpusSpec]:
    from rnnchat.plugins.manager import get_host

    return get_host().corpora


# ---- the user's corpora -----------------------------------------------------

def local_path(name: str) -> Path:
    """Where ``rnnchat corpora get NAME`` puts a download."""
    return paths.corpora_dir() / f"{name}.txt"


def registry_path() -> Path:
    return paths.corpora_dir() / "local.json"


MAX_REGISTRY_BYTES = 16 << 20


def load_registry() -> dict[str, dict]:
    """The user's corpora from ``local.json``; entries of the wrong shape are left out (each field is
    checked: a name, a path string, optional sha256/size/chars of the right type)."""
    try:
        data = json.loads(read_regular(registry_path(), MAX_REGISTRY_BYTES, "corpus list").decode("utf-8"))
        entries = data.get("corpora", {})
        if not isinstance(entries, dict):
            raise ValueError("'corpora' is not an object")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, AttributeError, RecursionError) as exc:
        raise CorpusError(f"{registry_path()} is unreadable ({first_line(exc)}); fix or delete it") from None
    return {k: v for k, v in entries.items() if isinstance(k, str) and NAME_RE.match(k) and _valid_entry(v)}


def _valid_entry(v) -> bool:
    if not isinstance(v, dict) or not isinstance(v.get("path"), str) or not v["path"] or "\x00" in v["path"]:
        return False
    if v.get("sha256") is not None and not (isinstance(v["sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", v["sha256"])):
        return False
    return all(v.get(k) is None or (isinstance(v[k], int) and not isinstance(v[k], bool) and v[k] >= 0)
               for k in ("size", "chars"))


def _save_registry(entries: dict[str, dict]) -> None:
    text = json.dumps({"corpora": entries}, indent=2, ensure_ascii=False) + "\n"
    write_bytes(registry_path(), text.encode("utf-8"))


def default_name(path: Path) -> str:
    name = re.sub(r"[^a-z0-9_.\-]+", "-", path.stem.lower()).strip("-._")[:64]
    return name or "corpus"


def add_corpus(path: str | Path, name: str | None = None, replace: bool = False) -> tuple[str, Path, str]:
    """Register a local UTF-8 file under ``name``; returns (name, absolute path, sha256)."""
    path = Path(path).expanduser().resolve()
    text, sha = read_text(path)
    name = name or default_name(path)
    if not NAME_RE.match(name):
        raise CorpusError(f"--name {name!r} is invalid: use lowercase letters, digits, '-', '_' or '.'")
    spec = _known().get(name)
    if spec is not None and spec.sha256 and spec.sha256 != sha:
        raise CorpusError(f"{name!r} is a catalog corpus with sha256 {spec.sha256[:12]}…, and {path} has "
                          f"{sha[:12]}…: it is not that text; register it under another --name")
    entries = load_registry()
    old = entries.get(name)
    if old and Path(old["path"]) != path and not replace:
        raise CorpusError(f"a corpus named {name!r} is already registered ({old['path']}); "
                          "pick another --name, or pass --replace")
    entries[name] = {"path": str(path), "sha256": sha, "size": path.stat().st_size, "chars": len(text),
                     "added": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _save_registry(entries)
    return name, path, sha


def corpus_rows() -> list[dict]:
    """Every corpus rnnchat knows: catalog and plugins (downloaded or not), then the user's own."""
    rows = []
    registry = load_registry()
    from rnnchat.plugins.manager import get_host

    host = get_host()
    for spec in host.corpora.values():
        how = spec.extra.get("download", "direct") if spec.extra else "direct"
        if spec.name in registry and Path(registry[spec.name]["path"]).exists():
            status, where = "added", registry[spec.name]["path"]
        elif spec.path and Path(spec.path).exists():
            status, where = "local", str(spec.path)
        elif local_path(spec.name).exists():
            status, where = "downloaded", str(local_path(spec.name))
        else:
            status, where = ("compiled: add it" if how == "compiled" else "not downloaded"), spec.url
        rows.append({"name": spec.name, "status": status, "size": spec.size, "licence": spec.licence,
                     "description": spec.description, "where": where, "sha256": spec.sha256,
                     "plugin": host.owner_of("corpora", spec.name)})
    for name, entry in registry.items():
        if name in host.corpora:
            continue
        status = "added" if Path(entry["path"]).exists() else "missing"
        rows.append({"name": name, "status": status, "size": entry.get("size"), "licence": "",
                     "description": "", "where": entry["path"], "sha256": entry.get("sha256"), "plugin": None})
    return rows


# ---- resolving a name -------------------------------------------------------

def resolve_named(name_or_path: str | None) -> tuple[Path, str]:
    """(file, corpus name) for a file path or the name of a known corpus that is on this machine."""
    if not name_or_path:
        raise CorpusError("no corpus given")
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path, path.stem
    registry = load_registry()
    if name_or_path in registry:
        added = Path(registry[name_or_path]["path"])
        if not added.exists():
            raise CorpusError(f"corpus {name_or_path!r} was added from {added}, which no longer exists: "
                              f"add it again with `rnnchat corpora add FILE --name {name_or_path} --replace`")
        return added, name_or_path
    spec = _known().get(name_or_path)
    if spec is not None:
        if spec.path and Path(spec.path).exists():
            return Path(spec.path), spec.name
        if local_path(spec.name).exists():
            return local_path(spec.name), spec.name
        if (spec.extra or {}).get("download") == "compiled":
            raise CorpusError(f"corpus {name_or_path!r} is not on this machine: it is compiled from {spec.url}; "
                              f"then `rnnchat corpora add FILE --name {name_or_path}`")
        raise CorpusError(f"corpus {name_or_path!r} is not downloaded yet: run `rnnchat corpora get {name_or_path}`")
    if local_path(name_or_path).exists():
        return local_path(name_or_path), name_or_path
    raise CorpusError(f"corpus {name_or_path!r} does not exist: give a UTF-8 text file or a name from "
                      "`rnnchat corpora`")


# ---- downloading --------------------------------------------------------------

def download_url(spec: CorpusSpec, url: str | None = None) -> str:
    if url:
        return url
    mirror = env.corpus_mirror()
    if mirror:
        return f"{mirror.rstrip('/')}/{spec.name}.txt"
    return spec.url


def get_corpus(name: str, url: str | None = None, force: bool = False, progress=None) -> tuple[Path, bool]:
    """Download catalog corpus ``name`` into the data dir, verifying its sha256. Returns (file, fetched)."""
    spec = _known().get(name)
    if spec is None:
        known = ", ".join(sorted(_known())) or "none"
        raise CorpusError(f"no corpus named {name!r} in the catalog (known: {known}); "
                          "a local file is added with `rnnchat corpora add PATH`")
    target = local_path(name)
    if target.exists() and not force:
        have = _sha256_file(target)
        if spec.sha256 is None or have == spec.sha256:
            return target, False
        raise CorpusError(f"{target} is there but its sha256 differs from the catalog's: "
                          f"run `rnnchat corpora get {name} --force` to download it again")
    how = (spec.extra or {}).get("download", "direct")
    if how == "compiled" and not url and not env.corpus_mirror():
        raise CorpusError(f"corpus {name!r} has no single file to download: it is compiled from {spec.url} "
                          f"(see corpora/README.md); then `rnnchat corpora add FILE --name {name}` checks its sha256")
    source = download_url(spec, url)
    if not source or not re.match(r"^https?://", source):
        raise CorpusError(f"cannot download {name!r} from {source!r}: only http:// and https:// URLs")
    limit = spec.size if spec.size else MAX_CORPUS_BYTES
    _fetch(source, target, spec.sha256, limit, name, progress)
    return target, True


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open_regular(path, "corpus") as (fh, _):
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise CorpusError(f"cannot read {path}: {exc.strerror or exc}") from None
    return h.hexdigest()


def _fetch(url: str, target: Path, sha256: str | None, limit: int, name: str, progress) -> None:
    from rnnchat.store.download import fetch

    with atomic_path(target) as tmp:
        fetch(url, Path(tmp), sha256=sha256, size=None, limit=limit, where=f"could not download {name!r} from {url}",
              error=CorpusError, progress=progress, said="the catalog says")
        decode_text(Path(tmp).read_bytes(), url)
