"""A long read, chunk by chunk, with progress and a cancel check between chunks (torch-free).

Both engines read a user's turn through :func:`chunks`: it yields the pieces to feed, and
before the first and after each one asks ``watch(done, total)`` whether to go on, so the app
can show "reading 12,288 / 30,005 · Esc cancels" and Esc stops the read at the next chunk
boundary (:class:`~rnnchat.core.errors.ReadCancelled`; the caller keeps nothing of it).
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

from rnnchat.core.errors import ReadCancelled

Watch = Callable[[int, int], bool]  # (ids read, ids in all) -> go on?


def chunks(ids: Sequence[int], size: int, watch: Watch | None = None) -> Iterator[tuple[int, Sequence[int]]]:
    """``(start, ids[start:start + size])`` for every chunk of ``ids``; ReadCancelled when
    ``watch`` says stop (checked before the first chunk and after every one but the last)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"chunk size must be a whole number >= 1, not {size!r}")
    total = len(ids)
    for start in range(0, total, size):
        if watch is not None and not watch(start, total):
            raise ReadCancelled(f"reading cancelled after {start:,} of {total:,} characters; nothing was sent")
        yield start, ids[start:start + size]
    if watch is not None and total:
        watch(total, total)  # the end: progress only (there is nothing left to cancel)
