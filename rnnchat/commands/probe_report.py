"""``rnnchat probe``'s terminal report: the top units per feature, the gate saturation table and plot."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """Text from files or the command line, with control characters escaped: safe to print to a terminal."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def feature_lines(report: dict) -> list[str]:
    lines = ["top units per feature (LAYER:QUANTITY:INDEX and Pearson r; layers from 1, units from 0):"]
    width = max(len(f["name"]) for f in report["features"])
    for f in report["features"]:
        if f["constant"]:
            lines.append(f"  {safe(f['name']):<{width}}  constant over this text: no correlation")
            continue
        units = "  ".join(f"{u['layer']}:{u['quantity']}:{u['index']} {u['r']:+.3f}" for u in f["top"])
        lines.append(f"  {safe(f['name']):<{width}}  {units}")
    lines.append("  " + "; ".join(f"{safe(f['name'])}: {safe(f['description'])}" for f in report["features"]))
    return lines


def saturation_lines(report: dict) -> list[str]:
    rows = report["saturation"]["summary"]
    if not rows:
        return ["gate saturation: this model's cells expose no gates"]
    lines = ["gate saturation (mean over units of the fraction of characters at which a gate is "
             "left-saturated < 0.1 / right-saturated > 0.9; units saturated more than half the time):",
             f"  {'layer':>5} {'gate':<6} {'units':>5} {'left':>7} {'right':>7} {'mostly left':>12} {'mostly right':>13}"]
    for r in rows:
        lines.append(f"  {r['layer']:>5} {safe(r['gate']):<6} {r['units']:>5} {r['left']:>7.1%} {r['right']:>7.1%} "
                     f"{r['mostly_left']:>12} {r['mostly_right']:>13}")
    return lines


def saturation_plot(report: dict, width: int, color: bool) -> str:
    """The paper's saturation plot: a panel per layer and gate, each unit a point
    (x: fraction of characters left-saturated, y: fraction right-saturated)."""
    import plotext as plt

    units = report["saturation"]["units"]
    gates = list(dict.fromkeys(key.split(":", 1)[1] for key in units))
    layers = sorted({int(key.split(":", 1)[0]) for key in units})
    if not gates:
        return ""
    fig = plt.figure
    fig.clear()
    fig.subplots(len(layers), len(gates))
    fig.plot_size(max(40, min(width, 30 * len(gates))), 14 * len(layers))
    for row, layer in enumerate(layers):
        for col, gate in enumerate(gates):
            sub = fig.subplot(row + 1, col + 1)
            sub.title(f"layer {layer}, {gate} gate")
            data = units.get(f"{layer}:{gate}")
            if data:
                sub.draw(sub.signal(data["left"], data["right"], marker="•"))
            for axis in (0, 1):
                sub.ruler(axis).lim(0, 1)
                sub.ruler(axis).ticks([0, 0.5, 1], ["0", "0.5", "1"])
    caption = "each point a unit: x = fraction of characters left-saturated (< 0.1), y = right-saturated (> 0.9)"
    return fig.build().string(colorless=not color) + "\n" + caption
