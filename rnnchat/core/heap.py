"""The objects a long run keeps, out of the cyclic garbage collector's way.

Once torch is imported and a model loaded, a process holds ~170K objects that live as long as it
does, and CPython's full collection walks all of them: ~100 ms on this project's 2-core machine
(``gc.collect()`` after ``open_engine``). Streams allocate small objects at every character, so
a full collection comes now and then in the middle of the text: in a server's engine processes,
measured with a collector callback over four rounds of `benchmarks/serve_speed.py` (1 and 16
clients), two full collections of 75-88 ms each stalled every stream of that process (the other
process then went on alone; once it stalled one for 110 ms of a 480 ms run). :func:`freeze`
moves what is alive now to the permanent generation (``gc.freeze``), which later collections
skip: the full collections then took 0.1 ms. Called once a process has set up what it keeps (the
model loaded) by the processes that keep it for their whole life: ``rnnchat generate``, ``rnnchat
serve`` and its engine processes (not the chat, which may load another model and drop the first:
what is frozen is never collected as a cycle, and garbage cycles alive at that moment stay too).
"""

from __future__ import annotations

import gc


def freeze() -> int:
    """Leave every object alive now out of later collections; returns how many are frozen."""
    gc.freeze()
    return gc.get_freeze_count()
