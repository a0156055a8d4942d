"""``rnnchat probe``'s work: read a text through a model, correlate units with features, count saturation."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import numpy as np

from rnnchat.engine.probe import Probe
from rnnchat.engine.probe_stats import LEFT, RIGHT, Correlations, Saturation, Unit
from rnnchat.engine.probe_text import select_text
from rnnchat.core.errors import RnnchatError
from rnnchat.core.probe_features import all_features, is_cjk

HTML_CHARS = 10_000  # characters shown on the --html page (the start of the text read)
UNIT_RE = re.compile(r"^(\d{1,6}):([a-z][a-z0-9_]{0,15}):(\d{1,9})$")


@dataclass
class Coloured:
    """One unit's activation over the start of the text, for the --html page."""

    unit: Unit
    kind: str
    chosen_by: str
    feature: str  # the feature unit.r is measured against
    text: str
    values: np.ndarray


def parse_unit(spec: str, probe: Probe, feature_names: list[str]) -> tuple[tuple[int, str, int] | None, str]:
    """``LAYER:QUANTITY:INDEX`` -> ((layer, name, index), "given"); ``auto[:FEATURE]`` -> (None, feature)."""
    if spec == "auto" or spec.startswith("auto:"):
        feature = spec[5:] or feature_names[0]
        if feature not in feature_names:
            raise RnnchatError(f"--unit {spec[:40]!r}: no feature {feature[:40]!r}; features: {', '.join(feature_names)}")
        return None, feature
    m = UNIT_RE.match(spec)
    if not m:
        raise RnnchatError(f"--unit {spec[:40]!r}: write LAYER:QUANTITY:INDEX (e.g. 2:c:442), auto or auto:FEATURE")
    layer, name, index = int(m.group(1)), m.group(2), int(m.group(3))
    sizes = {(q.layer, q.name): q.size for q in probe.quantities()}
    if (layer, name) not in sizes:
        known = ", ".join(f"{lay}:{n}" for lay, n in sizes)
        raise RnnchatError(f"--unit {spec}: layer {layer} has no quantity {name!r}; known: {known}")
    if sizes[(layer, name)] and index >= sizes[(layer, name)]:
        raise RnnchatError(f"--unit {spec}: index {index} is out of range (layer {layer} {name} has "
                           f"{sizes[(layer, name)]} units, 0-{sizes[(layer, name)] - 1})")
    return (layer, name, index), "given"


def _unit_values(probe: Probe, ids, layer: int, name: str, index: int) -> np.ndarray:
    acts, _ = probe.activations(ids, select=[(layer, name)])
    block = acts[(layer, name)]
    if index >= block.shape[1]:
        raise RnnchatError(f"--unit {layer}:{name}:{index}: out of range ({block.shape[1]} units)")
    return block[:, index]


def run_probe(loaded, corpus: str | None, chars: int, user_features=(), top: int = 5,
              unit: str | None = None) -> tuple[dict, Coloured | None]:
    """The report (a JSON-ready dict) and, when ``unit`` is given, that unit's colouring."""
    t0 = time.perf_counter()
    chosen = select_text(loaded.meta, loaded.vocab, corpus, chars)
    feats = all_features(chosen.text, user_features)
    probe = Probe(loaded.model)
    unit_key, chosen_by = parse_unit(unit, probe, [f.name for f in feats]) if unit else (None, "")
    corr = Correlations(np.stack([f.values for f in feats], axis=1))
    sat = Saturation()
    gates = {(q.layer, q.name) for q in probe.quantities() if q.kind == "gate"}
    sizes = {}
    for start, blocks, _ in probe.chunks(chosen.ids):
        corr.add(start, blocks)
        sat.add({k: v for k, v in blocks.items() if k in gates})
        sizes.update({k: v.shape[1] for k, v in blocks.items()})
    features = []
    for j, f in enumerate(feats):
        constant = corr.f_norm[j] == 0
        features.append({"name": f.name, "description": f.description, "mean": round(float(f.values.mean()), 4),
                         "constant": bool(constant),
                         "top": [] if constant else [u.as_dict() for u in corr.top(j, top)]})
    fractions = sat.fractions()
    report = {
        "model": {"path": str(loaded.path), "cell": loaded.meta["cell"], "layers": loaded.meta["layers"],
                  "hidden": loaded.meta["hidden"]},
        "text": {"source": chosen.source, "path": chosen.path, "held_out": chosen.held_out, "start": chosen.start,
                 "chars": len(chosen.ids), "total": chosen.total, "cjk": is_cjk(chosen.text)},
        "quantities": [{"layer": q.layer, "name": q.name, "kind": q.kind, "size": sizes.get((q.layer, q.name), q.size),
                        "description": q.description, "how": q.how} for q in probe.quantities()],
        "features": features,
        "saturation": {"left_below": LEFT, "right_above": RIGHT, "summary": sat.summary(),
                       "units": {f"{lay}:{g}": {"left": np.round(left, 4).tolist(), "right": np.round(right, 4).tolist()}
                                 for (lay, g), (left, right) in sorted(fractions.items())}},
    }
    coloured = None
    if unit:
        if unit_key is None:
            best = next((f["top"][0] for f in features if f["name"] == chosen_by and f["top"]), None)
            if best is None:
                raise RnnchatError(f"--unit auto:{chosen_by}: that feature is constant over this text")
            unit_key, chosen_by = (best["layer"], best["quantity"], best["index"]), f"auto:{chosen_by}"
        layer, name, index = unit_key
        ids = chosen.ids[:HTML_CHARS]
        values = _unit_values(probe, ids, layer, name, index)
        r = [None if f["constant"] or not np.isfinite(v) else round(float(v), 4)
             for f, v in zip(features, corr.r()[(layer, name)][:, index])]
        kind = next(q.kind for q in probe.quantities() if (q.layer, q.name) == (layer, name))
        j = [f.name for f in feats].index(chosen_by[5:]) if chosen_by.startswith("auto:") else 0
        coloured = Coloured(Unit(layer, name, index, r[j] if r[j] is not None else float("nan")), kind,
                            chosen_by, feats[j].name, chosen.text[:HTML_CHARS], values)
        report["unit"] = {"layer": layer, "quantity": name, "index": index, "kind": kind, "chosen_by": chosen_by,
                          "r": {f["name"]: v for f, v in zip(features, r)}}
    report["seconds"] = round(time.perf_counter() - t0, 2)
    return report, coloured
