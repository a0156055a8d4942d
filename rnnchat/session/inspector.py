"""The chat inspector's reading of a conversation: one unit's activation at every character, and
the strongest units at each character. Torch-free (NumPy).

The engine re-reads the conversation's characters (every turn's ``fed``, from the state the
first turn started from) on its own thread, a chunk at a time (``ChatEngine.activations``, the
probe's :class:`~rnnchat.engine.probe.Probe` for the real engine). Nothing is recorded while a
reply is written: with the inspector off, the per-character step pays nothing. "auto" ranks
every unit by its Pearson r with a feature (the position in the line; the verse position on a
CJK text) as ``rnnchat probe`` does: over the start of the held-out part of the model's corpus
(:data:`SAMPLE_CHARS` characters) when it is on this machine, else over the conversation.

A conversation longer than :data:`MAX_CHARS` is read from the saved start state of the first
turn from which the rest fits; the turns before it stay uncoloured.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rnnchat.core.errors import RnnchatError
from rnnchat.core.safe_text import printable
from rnnchat.session.inspect_target import Target
from rnnchat.session.types import SessionError

if TYPE_CHECKING:
    from rnnchat.session.engine_api import ChatEngine
    from rnnchat.session.framing import Framing
    from rnnchat.session.types import Turn

MAX_CHARS = 20_000  # characters re-read at most (the latest turns that fit)
CHUNK = 1024  # characters per engine call: bounded memory, and a reply asked for meanwhile waits at most one chunk
TOP = 8  # units listed per character in the panel
SAMPLE_CHARS = 3000  # auto ranks units over this much of the model's held-out text (rnnchat probe --chars 3000)
_RANKED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # engine -> {"text": sample, ("rank", feature): ...}


@dataclass(frozen=True)
class TurnColours:
    """Where a turn's shown text was read: ``positions[k]`` is the index (into the characters
    read) of ``text[k]``, -1 where it was not read (a character the model does not know)."""

    turn: int  # index in the session's turns
    role: str
    text: str
    positions: np.ndarray  # int32 [len(text)]


@dataclass(frozen=True)
class Reading:
    layer: int
    quantity: str
    index: int
    kind: str  # "state", "gate" or "value"
    description: str
    chosen_by: str  # "" for a given unit, else the feature auto ranked it first for
    r: float | None  # auto: its r with that feature over ``ranked_over``
    ranked_over: str  # auto: which text it was ranked over
    text: str  # the characters read, in order
    values: np.ndarray  # float32 [T]: the unit after each character
    centre: float  # the colour scale: centre ± half maps to blue .. red
    half: float
    slots: tuple[tuple[int, str], ...]  # the quantities the strongest units are taken from
    top_slot: np.ndarray  # int16 [T, TOP]: index into slots
    top_index: np.ndarray  # int32 [T, TOP]
    top_value: np.ndarray  # float32 [T, TOP], largest |value| first
    turns: tuple[TurnColours, ...]
    skipped: int  # turns before the first one read (too long a conversation)

    @property
    def label(self) -> str:
        return f"{self.layer}:{self.quantity}:{self.index}"

    def scaled(self, value: float) -> float:
        """``value`` on the colour scale, in [-1, 1] (0 for NaN)."""
        if not math.isfinite(value):
            return 0.0
        return max(-1.0, min(1.0, (value - self.centre) / self.half))

    def strongest(self, pos: int) -> list[tuple[str, float]]:
        """The units most active after character ``pos``: ("LAYER:QUANTITY:INDEX", value)."""
        return [(f"{self.slots[s][0]}:{self.slots[s][1]}:{j}", float(v))
                for s, j, v in zip(self.top_slot[pos], self.top_index[pos], self.top_value[pos])]


def _start_turn(turns: list[tuple[str, str, str, object]]) -> int:
    """The first turn to read from: the earliest whose turns up to the end fit in MAX_CHARS."""
    total, k = 0, len(turns)
    for i in range(len(turns) - 1, -1, -1):
        total += len(turns[i][2])
        if total > MAX_CHARS:
            break
        if turns[i][3] is not None:
            k = i
    if k == len(turns) and turns:
        raise SessionError(f"the last turn alone is {len(turns[-1][2]):,} characters; "
                           f"the inspector reads at most {MAX_CHARS:,}")
    return k


def _encode(engine: "ChatEngine", text: str) -> list[int]:
    """One id per character read (the characters fed were decoded from ids, so each has one)."""
    ids = []
    for ch in text:
        one = engine.encode(ch).ids
        if len(one) != 1:
            raise SessionError(f"cannot re-read the conversation: the model does not know {ch!r}")
        ids.extend(one)
    return ids


def _positions(role: str, text: str, fed: str, framing: "Framing") -> np.ndarray:
    """Where each character of a turn's text sits in what the turn fed (-1: not fed)."""
    n = len(text)
    if role == "model" and fed.startswith(text):  # a reply: its text, then the stop sequence
        return np.arange(n, dtype=np.int32)
    i = framing.template.find("{text}")
    suffix = framing.template[i + 6:] if i >= 0 else ""
    if role == "user" and fed.endswith(text + suffix):  # (the closing of a cut reply) + template
        return np.arange(n, dtype=np.int32) + (len(fed) - len(suffix) - n)
    out = np.full(n, -1, np.int32)  # characters dropped or changed on the way in: match in order
    head = fed.find(framing.template[:i]) if role == "user" and i > 0 else -1
    j = head + i if head >= 0 else 0
    for k, ch in enumerate(text):
        found = fed.find(ch, j, j + 8)
        if found >= 0:
            out[k], j = found, found + 1
    return out


def _check_unit(target: Target, quantities) -> tuple[int, str, int]:
    layers = sorted({q[0] for q in quantities})
    if target.layer not in layers:
        raise SessionError(f"/inspect: the model has layers {layers[0]}-{layers[-1]} (numbered from 1)")
    mine = [q for q in quantities if q[0] == target.layer]
    name = target.quantity or mine[0][1]
    q = next((q for q in mine if q[1] == name), None)
    if q is None:
        raise SessionError(f"/inspect: layer {target.layer} has no quantity {name!r}; it has "
                           + ", ".join(q[1] for q in mine))
    if q[3] and target.index >= q[3]:
        raise SessionError(f"/inspect: layer {target.layer} {name} has {q[3]} units (0-{q[3] - 1})")
    return target.layer, name, target.index


def _feature(text: str, name: str | None) -> tuple[str, np.ndarray]:
    from rnnchat.core.probe_features import all_features, is_cjk

    if name is None:
        name = "verse_position" if is_cjk(text) else "line_position"
    feats = all_features(text, (name,) if "=" in name else ())
    wanted = name.partition("=")[0]
    f = next((f for f in feats if f.name == wanted), None)
    if f is None:
        raise SessionError(f"/inspect auto: no feature {wanted!r}; features: " + ", ".join(f.name for f in feats))
    return wanted, f.values


class _Top:
    """The strongest units at each character, chunk by chunk."""

    def __init__(self, n: int, slots: list[tuple[int, str]]) -> None:
        self.slots = slots
        self.slot = np.zeros((n, TOP), np.int16)
        self.index = np.zeros((n, TOP), np.int32)
        self.value = np.zeros((n, TOP), np.float32)

    def add(self, start: int, acts: dict) -> None:
        blocks = [np.asarray(acts[s], np.float32) for s in self.slots]
        sizes = np.cumsum([0] + [b.shape[1] for b in blocks])
        both = np.concatenate(blocks, axis=1)
        k = min(TOP, both.shape[1])
        part = np.argpartition(-np.abs(both), k - 1, axis=1)[:, :k]
        vals = np.take_along_axis(both, part, 1)
        order = np.argsort(-np.abs(vals), axis=1, kind="stable")
        part, vals = np.take_along_axis(part, order, 1), np.take_along_axis(vals, order, 1)
        slot = np.searchsorted(sizes, part, side="right") - 1
        end = start + len(both)
        self.slot[start:end, :k], self.index[start:end, :k] = slot, part - sizes[slot]
        self.value[start:end, :k] = vals


def _chunks(engine: "ChatEngine", state, ids: list[int], select=None):
    for start in range(0, len(ids), CHUNK):
        acts, state = engine.activations(state, ids[start:start + CHUNK], select)
        yield start, acts


def _rank(engine, state, ids, text: str, feature: str | None, over: str) -> tuple[tuple[int, str, int], str, float]:
    """The unit whose activation over ``text`` has the largest |r| with the feature."""
    from rnnchat.engine.probe_stats import Correlations  # NumPy only

    name, values = _feature(text, feature)
    corr = Correlations(values[:, None])
    if corr.f_norm[0] == 0:
        raise SessionError(f"/inspect auto: {name} is constant over {over}; name a unit instead (/inspect 2:0)")
    for start, acts in _chunks(engine, state, ids):
        corr.add(start, acts)
    best = corr.top(0, 1)
    if not best or not best[0].r:
        raise SessionError(f"/inspect auto: no unit varies with {name} over {over}")
    return (best[0].layer, best[0].quantity, best[0].index), name, best[0].r


def _auto(engine, state, ids, text: str, feature: str | None) -> tuple[tuple[int, str, int], str, float, str]:
    """Auto, as ``rnnchat probe`` ranks: over the start of the held-out part of the model's corpus,
    read from the initial state (once per model and feature); when that text is not on this
    machine, over the conversation, and the legend says so."""
    cache = _RANKED.setdefault(engine, {})
    if "text" not in cache:
        try:
            cache["text"] = engine.probe_text(SAMPLE_CHARS)
        except RnnchatError:
            cache["text"] = None
    if cache["text"] is None:
        over = f"this conversation's {len(ids):,} characters (the model's corpus is not on this machine)"
        return (*_rank(engine, state, ids, text, feature, over), over)
    if ("rank", feature) not in cache:
        sample_ids, sample, source = cache["text"]
        over = f"{len(sample_ids):,} characters of {printable(source, 60)}"
        cache[("rank", feature)] = (*_rank(engine, engine.initial().state, sample_ids, sample, feature, over), over)
    return cache[("rank", feature)]


def _scale(kind: str, values: np.ndarray) -> tuple[float, float]:
    from rnnchat.engine.probe_stats import scale_for  # the probe page's scale (NumPy only)

    centre, half, _ = scale_for(kind, values)
    return centre, half


def read_conversation(engine: "ChatEngine", turns: list["Turn"], framing: "Framing", target: Target) -> Reading:
    """Re-read ``turns`` through ``engine`` (waits for its thread) and colour them by ``target``."""
    seen = [(t.role, t.text, t.fed, t.snapshot) for t in turns]  # taken now: a reply may start meanwhile
    first = _start_turn(seen)
    text = "".join(fed for _, _, fed, _ in seen[first:])
    if not text:
        raise SessionError("nothing to inspect yet: say something first")
    ids = _encode(engine, text)
    quantities = [tuple(q) for q in engine.quantities()]
    kinds = {(q[0], q[1]): q for q in quantities}
    slots = [(q[0], q[1]) for q in quantities if q[2] == "state"] or [(q[0], q[1]) for q in quantities]
    top = _Top(len(ids), slots)
    state = seen[first][3].state
    if target.auto:
        (layer, name, index), chosen_by, r, over = _auto(engine, state, ids, text, target.feature)
    else:
        (layer, name, index), chosen_by, r, over = _check_unit(target, quantities), "", None, ""
    parts = []
    for start, acts in _chunks(engine, state, ids):
        block = acts[(layer, name)]
        if index >= block.shape[1]:
            raise SessionError(f"/inspect: layer {layer} {name} has {block.shape[1]} units (0-{block.shape[1] - 1})")
        parts.append(np.asarray(block[:, index], np.float32))
        top.add(start, acts)
    values = np.concatenate(parts)
    kind, description = kinds[(layer, name)][2], kinds[(layer, name)][4]
    centre, half = _scale(kind, values)
    colours, offset = [], 0
    for i, (role, shown, fed, _) in enumerate(seen[first:], start=first):
        at = _positions(role, shown, fed, framing)
        colours.append(TurnColours(i, role, shown, np.where(at >= 0, at + offset, -1).astype(np.int32)))
        offset += len(fed)
    return Reading(layer, name, index, kind, description, chosen_by, r, over, text, values, centre, half, tuple(slots),
                   top.slot, top.index, top.value, tuple(colours), first)
