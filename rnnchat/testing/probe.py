"""The probe contract check: what ``rnnchat probe`` and the inspector see inside a cell.

``check_probe(cell, options=None)`` takes a registered cell name or a cell class
and checks, on a tiny cell, that the quantities it exposes (its own
``QUANTITIES``/``quantities`` when it offers the contract, its state otherwise)
are declared properly, come back as ``[B, T, K]`` float tensors without NaN,
put gates inside [0, 1], give ``h`` equal to the cell's own ``forward`` output,
do not depend on how the text is cut into chunks, and leave the state passed in
unchanged. It returns ``{name: kind}``, what the probe shows for the cell.
"""

from __future__ import annotations

import torch

__all__ = ["check_probe"]


def _cell_class(cell):
    if isinstance(cell, str):
        from rnnchat.plugins.manager import get_host

        host = get_host()
        assert cell in host.cells, f"cell {cell!r} is not registered (registered: {', '.join(sorted(host.cells))})"
        return host.cell(cell).load()
    if isinstance(cell, type) and issubclass(cell, torch.nn.Module):
        return cell
    raise TypeError(f"check_probe takes a registered cell name or a torch.nn.Module class, not {cell!r}")


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


def check_probe(cell, options: dict | None = None, *, input_size: int = 5, hidden_size: int = 8,
                steps: int = 9, seed: int = 0, tol: float = 1e-5) -> dict[str, str]:
    """Check what the probe sees in ``cell``; return ``{quantity name: kind}``."""
    from rnnchat.engine.probe_cells import reader_for
    from rnnchat.engine.states import clone_state
    from rnnchat.testing.common import _tensors

    cls = _cell_class(cell)
    torch.manual_seed(seed)
    layer = cls(input_size, hidden_size, **(options or {})).eval()
    name = getattr(cls, "__name__", str(cls))
    reader = reader_for(layer)  # raises PluginError for a malformed QUANTITIES
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(1, steps, input_size, generator=gen)
    with torch.no_grad():
        _, state = layer(torch.randn(1, 5, input_size, generator=gen), layer.initial_state(1))
        before = clone_state(state)
        y, _ = layer(x, state)
        y_probe, _, found = reader.run(x, state)
        assert all(_diff(a, b) == 0 for a, b in zip(_tensors(state), _tensors(before))), \
            f"{name}: reading quantities modified the state passed in"
        assert set(found) == set(reader.kinds), f"{name}: quantities {sorted(found)} != declared {sorted(reader.kinds)}"
        for q, value in found.items():
            assert isinstance(value, torch.Tensor) and value.dim() == 3 and tuple(value.shape[:2]) == (1, steps), \
                f"{name}: quantity {q!r} must be [B, T, K] with B, T = (1, {steps})"
            assert torch.isfinite(value).all(), f"{name}: quantity {q!r} has NaN or infinite values"
            if reader.kinds[q] == "gate":
                assert float(value.min()) >= 0 and float(value.max()) <= 1, f"{name}: gate {q!r} leaves [0, 1]"
        assert _diff(y_probe, y) <= tol, f"{name}: the probe's layer output differs from forward's"
        if "h" in found:
            assert found["h"].shape == y.shape and _diff(found["h"], y) <= tol * max(1.0, float(y.abs().max())), \
                f"{name}: quantity 'h' differs from the output of forward by {_diff(found['h'], y):.3g}"
        cut = steps // 2
        _, mid, first = reader.run(x[:, :cut], clone_state(before))
        _, _, second = reader.run(x[:, cut:], mid)
        for q in found:
            joined = torch.cat([first[q], second[q]], dim=1)
            assert _diff(joined, found[q]) <= tol * max(1.0, float(found[q].abs().max())), \
                f"{name}: quantity {q!r} read in two pieces differs from one reading"
    return dict(reader.kinds)
