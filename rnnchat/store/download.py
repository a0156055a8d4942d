"""One HTTP download, checked and resumable (torch-free): what ``corpora get`` and ``models get`` use.

:func:`fetch` writes ``url`` into a ``.part`` file. With ``resume``, a ``.part`` left by an
interrupted transfer is continued with an HTTP ``Range`` request (a server that answers with the
whole file instead starts it over). The result is checked against the expected size (the
declared ``Content-Length`` and the bytes actually received, never more than ``limit``) and
sha256: a wrong size or checksum removes the ``.part`` file; a transfer that broke off keeps it
for the next try (with ``resume``) or removes it. The caller moves the finished file into place.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from rnnchat.core.errors import RnnchatError
from rnnchat.core.safe_files import open_regular, refuse_special

TIMEOUT = 30.0  # seconds without data before a download gives up
BLOCK = 1 << 16
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _hash_existing(part: Path, h) -> int:
    with open_regular(part, "partial download") as (fh, _size):
        n = 0
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            n += len(block)
    return n


def fetch(url: str, part: Path, *, sha256: str | None, size: int | None, limit: int, where: str,
          error: type[RnnchatError] = RnnchatError, resume: bool = False, progress=None,
          said: str = "expected") -> Path:
    """Download ``url`` into ``part``; returns ``part`` holding exactly the checked file.
    Every failure is ``error`` with one line starting with ``where``."""
    import http.client
    import urllib.error
    import urllib.request

    part = Path(part)
    refuse_special(part, "partial download")
    h = hashlib.sha256()
    have = 0
    if resume and part.exists():
        have = _hash_existing(part, h)
        if size is not None and have > size:
            _remove(part)
            h, have = hashlib.sha256(), 0
    elif part.exists():
        _remove(part)
    kept = "; run it again to resume" if resume else "; nothing saved"
    try:
        if size is None or have < size:
            headers = {"User-Agent": "rnnchat"}
            if have:
                headers["Range"] = f"bytes={have}-"
            request = urllib.request.Request(url, headers=headers)
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                if have and response.status != 206:  # the whole file again: start over
                    h, have = hashlib.sha256(), 0
                elif have:
                    m = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
                    if not m or int(m.group(1)) != have:
                        raise error(f"{where}: the server answered another range than asked "
                                    f"({response.headers.get('Content-Range')!r})")
                declared = response.headers.get("Content-Length")
                total = have + int(declared) if declared and declared.isdigit() else None
                if total is not None and (total > limit or (size is not None and total != size)):
                    _remove(part)
                    raise error(f"{where}: the server offers {total:,} bytes, {said} "
                                f"{size if size is not None else limit:,}")
                with open(part, "ab" if have else "wb") as out:
                    while True:
                        block = response.read(BLOCK)
                        if not block:
                            break
                        have += len(block)
                        if have > limit:
                            out.close()
                            _remove(part)
                            raise error(f"{where}: more than the {limit:,} bytes {said}; not saved")
                        h.update(block)
                        out.write(block)
                        if progress:
                            progress(have, total)
                if total is not None and have != total:
                    raise error(f"{where}: the transfer broke off after {have:,} of {total:,} bytes{kept}")
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and resume:  # our .part is not a prefix the server knows: start over next time
            _remove(part)
        raise error(f"{where}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise error(f"{where}: {getattr(exc.reason, 'strerror', None) or exc.reason}") from None
    except http.client.HTTPException as exc:
        if not resume:
            _remove(part)
        raise error(f"{where}: the transfer broke off ({type(exc).__name__}) after {have:,} bytes{kept}") from None
    except TimeoutError:
        if not resume:
            _remove(part)
        raise error(f"{where}: no answer for {TIMEOUT:.0f}s{kept}") from None
    except OSError as exc:
        raise error(f"{where}: {exc.strerror or exc}") from None
    if size is not None and have != size:
        _remove(part)
        raise error(f"{where}: received {have:,} bytes, {said} {size:,}; removed")
    if sha256 and h.hexdigest() != sha256:
        _remove(part)
        raise error(f"{where}: its sha256 is {h.hexdigest()}, {said} {sha256}; the file was removed")
    return part
