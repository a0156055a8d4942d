"""Streaming statistics over activations: Pearson correlation with features, gate saturation.

``scale_for`` is the colour scale of a unit's values (the ``--html`` page, the chat inspector).
Both statistics accumulate chunk by chunk (NumPy, float64 sums), so a long text never has
to be held in memory as a whole. Saturation follows Karpathy, Johnson and
Fei-Fei (2015): a gate is left-saturated below 0.1 and right-saturated above 0.9.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEFT, RIGHT = 0.1, 0.9


@dataclass(frozen=True)
class Unit:
    layer: int
    quantity: str
    index: int
    r: float

    def label(self) -> str:
        return f"{self.layer}:{self.quantity}:{self.index}"

    def as_dict(self) -> dict:
        return {"layer": self.layer, "quantity": self.quantity, "index": self.index, "r": round(self.r, 4)}


class Correlations:
    """Pearson r of every unit of every quantity with every feature column."""

    def __init__(self, features: np.ndarray) -> None:
        f = np.asarray(features, dtype=np.float32)  # [T, F], the whole text's features
        self.features = (f - f.mean(axis=0, dtype=np.float64)).astype(np.float32)  # float64 only chunk by chunk
        self.f_norm = np.sqrt((self.features.astype(np.float64) ** 2).sum(axis=0))
        self.n = 0
        self.sums: dict = {}  # key -> [shift, sum a, sum a^2, sum f*a]

    def add(self, start: int, blocks: dict) -> None:
        f = self.features[start:]
        for key, a in blocks.items():
            a = np.asarray(a, dtype=np.float64)
            if key not in self.sums:
                shift = a.mean(axis=0)  # Pearson r is shift-free; this keeps the float64 sums exact
                self.sums[key] = [shift, np.zeros(a.shape[1]), np.zeros(a.shape[1]),
                                  np.zeros((f.shape[1], a.shape[1]))]
            shift, sa, saa, sfa = self.sums[key]
            a = a - shift
            sa += a.sum(axis=0)
            saa += (a * a).sum(axis=0)
            sfa += f[:len(a)].astype(np.float64).T @ a
        self.n = max(self.n, start + max((len(a) for a in blocks.values()), default=0))

    def r(self) -> dict:
        """{key: r[F, K]}; NaN where a unit or a feature is constant over the text."""
        out = {}
        n = max(self.n, 1)
        for key, (_, sa, saa, sfa) in self.sums.items():
            var = np.maximum(saa - sa * sa / n, 0.0)  # features are centred: sum f = 0
            with np.errstate(divide="ignore", invalid="ignore"):
                r = sfa / (self.f_norm[:, None] * np.sqrt(var)[None, :])
            r[:, var <= 1e-12 * n] = np.nan
            out[key] = np.clip(r, -1.0, 1.0)
        return out

    def top(self, feature: int, count: int) -> list[Unit]:
        """The ``count`` units with the largest |r| for feature column ``feature``."""
        rows = []
        for (layer, name), r in self.r().items():
            row = np.nan_to_num(r[feature], nan=0.0)
            best = np.argsort(-np.abs(row), kind="stable")[:count]
            rows.extend(Unit(layer, name, int(j), float(row[j])) for j in best)
        rows.sort(key=lambda u: -abs(u.r))
        return rows[:count]


class Saturation:
    """Per gate unit: the fraction of characters at which it is below 0.1 (left) and above 0.9 (right)."""

    def __init__(self) -> None:
        self.counts: dict = {}  # key -> [n, left[K], right[K]]

    def add(self, blocks: dict) -> None:
        for key, a in blocks.items():
            if key not in self.counts:
                self.counts[key] = [0, np.zeros(a.shape[1], np.int64), np.zeros(a.shape[1], np.int64)]
            c = self.counts[key]
            c[0] += len(a)
            c[1] += (a < LEFT).sum(axis=0)
            c[2] += (a > RIGHT).sum(axis=0)

    def fractions(self) -> dict:
        """{key: (left[K], right[K])}, fractions of the characters read."""
        return {k: (left / max(n, 1), right / max(n, 1)) for k, (n, left, right) in self.counts.items()}

    def summary(self) -> list[dict]:
        rows = []
        for (layer, gate), (left, right) in sorted(self.fractions().items()):
            rows.append({"layer": layer, "gate": gate, "units": int(len(left)),
                         "left": round(float(left.mean()), 4), "right": round(float(right.mean()), 4),
                         "mostly_left": int((left > 0.5).sum()), "mostly_right": int((right > 0.5).sum())})
        return rows


def scale_for(kind: str, values) -> tuple[float, float, str]:
    """(centre, half-range, how): gates are centred on 0.5 over [0, 1]; others on 0, their scale the 99th
    percentile of |value| (a few large values would wash out the rest)."""
    if kind == "gate":
        return 0.5, 0.5, "0 (blue) to 1 (red), white at 0.5"
    finite = np.abs(np.asarray(values, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    peak = float(np.percentile(finite, 99)) if finite.size else 0.0
    peak = peak or float(finite.max(initial=0.0)) or 1.0
    return 0.0, peak, f"-{peak:.3g} (blue) to +{peak:.3g} (red), white at 0; beyond: full colour"
