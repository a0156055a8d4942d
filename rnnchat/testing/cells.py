"""The contract checks of a cell (see ``rnnchat.testing``)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from rnnchat.engine.states import clone_state
from rnnchat.testing.common import _close, _max_diff, _structure, _tensors, available_devices

# ---- cells ----------------------------------------------------------------------------------------------


@dataclass
class CellCase:
    """A cell class with the options and sizes to check it at."""

    name: str
    cls: type
    options: dict = field(default_factory=dict)
    registered: bool = False
    input_size: int = 5
    hidden_size: int = 8
    batch: int = 3
    steps: int = 9
    seed: int = 0

    def make(self, seed: int | None = None, dtype=torch.float32):
        torch.manual_seed(self.seed if seed is None else seed)
        cell = self.cls(self.input_size, self.hidden_size, **self.options)
        return cell.to(dtype).eval()

    def inputs(self, steps: int | None = None, batch: int | None = None, dtype=torch.float32, seed: int = 1):
        gen = torch.Generator().manual_seed(seed)
        shape = (batch or self.batch, steps or self.steps, self.input_size)
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)

    def warm_state(self, cell, dtype=torch.float32, batch: int | None = None):
        """A state away from the initial one: the state after reading a few random inputs."""
        b = batch or self.batch
        with torch.no_grad():
            _, state = cell(self.inputs(5, b, dtype, seed=7).to(_device(cell)), cell.initial_state(b))
        return state

    def where(self) -> str:
        return f"cell {self.name!r}"


def _device(module) -> torch.device:
    for p in module.parameters():
        return p.device
    for b in module.buffers():
        return b.device
    return torch.device("cpu")


def _dtype(module):
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _case(cell, options, **sizes) -> CellCase:
    if isinstance(cell, str):
        from rnnchat.plugins.manager import get_host

        host = get_host()
        assert cell in host.cells, (f"cell {cell!r} is not registered (registered: {', '.join(sorted(host.cells))}); "
                                    "is the plugin installed (`pip install -e .`)?")
        return CellCase(cell, host.cell(cell).load(), dict(options or {}), True, **sizes)
    if isinstance(cell, type) and issubclass(cell, torch.nn.Module):
        return CellCase(cell.__name__, cell, dict(options or {}), False, **sizes)
    raise TypeError(f"check_cell takes a registered cell name or a torch.nn.Module class, not {cell!r}")


def check_cell_state(case: CellCase) -> None:
    """Initial state, and what forward/step return: structure, shapes, dtypes, device; no in-place changes."""
    for dtype in (torch.float32, torch.float64):
        cell = case.make(dtype=dtype)
        where = f"{case.where()} ({dtype})"
        dev, pdtype = _device(cell), _dtype(cell)
        for batch in (1, case.batch):
            state = cell.initial_state(batch)
            for t in _tensors(state):
                assert t.shape[:1] == (batch,), f"{where}: initial_state({batch}) has a tensor of shape " \
                                                f"{tuple(t.shape)}; the batch must be the first dimension"
                assert t.device == dev, f"{where}: initial_state is on {t.device}, the cell on {dev}"
                assert t.dtype == pdtype, f"{where}: initial_state has dtype {t.dtype}, the parameters {pdtype}"
                assert not t.requires_grad, f"{where}: initial_state must not require grad"
        state = case.warm_state(cell, dtype)
        before = clone_state(state)
        shapes = [(tuple(t.shape), t.dtype) for t in _tensors(state)]
        x = case.inputs(dtype=dtype)
        with torch.no_grad():
            y, new = cell(x, state)
            assert isinstance(y, torch.Tensor) and tuple(y.shape) == (case.batch, case.steps, case.hidden_size), \
                f"{where}: forward(x[B,T,I], state) must return y[B,T,H] = {(case.batch, case.steps, case.hidden_size)}, " \
                f"got {getattr(y, 'shape', type(y).__name__)}"
            assert y.dtype == pdtype, f"{where}: forward returned {y.dtype} outputs for {pdtype} inputs"
            for label, out in (("forward", new),):
                assert _structure(out) == _structure(state), \
                    f"{where}: {label} returned a state shaped {_structure(out)}, the input was {_structure(state)}"
                assert [(tuple(t.shape), t.dtype) for t in _tensors(out)] == shapes, \
                    f"{where}: {label} changed the state's shapes or dtypes"
            h, new = cell.step(x[:, 0], state)
            assert isinstance(h, torch.Tensor) and tuple(h.shape) == (case.batch, case.hidden_size), \
                f"{where}: step(x[B,I], state) must return h[B,H], got {getattr(h, 'shape', type(h).__name__)}"
            assert _structure(new) == _structure(state), f"{where}: step changed the state's structure"
            assert [(tuple(t.shape), t.dtype) for t in _tensors(new)] == shapes, \
                f"{where}: step changed the state's shapes or dtypes"
            y1, _ = cell(x[:, :1], state)
            assert tuple(y1.shape) == (case.batch, 1, case.hidden_size), f"{where}: forward of one step failed"
        assert _max_diff(before, state) == 0, \
            f"{where}: forward or step modified the state passed in (chat snapshots rely on states being immutable)"
        for t in _tensors(new):
            assert torch.isfinite(t).all(), f"{where}: step produced NaN or infinite state"


def check_cell_forward_matches_step(case: CellCase) -> None:
    """forward over a sequence == step repeated, from a non-trivial state; forward in two pieces == at once."""
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 1e-4)):
        cell = case.make(dtype=dtype)
        where = f"{case.where()} ({dtype})"
        for state in (cell.initial_state(case.batch), case.warm_state(cell, dtype)):
            x = case.inputs(dtype=dtype)
            with torch.no_grad():
                y, final = cell(x, state)
                s, outs = state, []
                for t in range(case.steps):
                    h, s = cell.step(x[:, t], s)
                    outs.append(h)
                stepped = torch.stack(outs, 1)
                _close(f"{where}: forward outputs and repeated step outputs", y, stepped, tol)
                _close(f"{where}: final state of forward and of repeated step", final, s, tol)
                cut = case.steps // 2
                ya, sa = cell(x[:, :cut], state)
                yb, sb = cell(x[:, cut:], sa)
                _close(f"{where}: forward in two pieces and forward at once", torch.cat([ya, yb], 1), y, tol)
                _close(f"{where}: final state of forward in two pieces and at once", sb, final, tol)


def check_cell_gradients(case: CellCase) -> None:
    """Every parameter gets a finite, non-zero gradient, through forward and through step."""
    cell = case.make().train()
    params = [(n, p) for n, p in cell.named_parameters() if p.requires_grad]
    assert params, f"{case.where()}: the cell has no trainable parameters"
    gen = torch.Generator().manual_seed(3)
    for path in ("forward", "step"):
        cell.zero_grad(set_to_none=True)
        state = case.warm_state(cell)
        x = case.inputs()
        if path == "forward":
            y, final = cell(x, state)
        else:
            s, outs = state, []
            for t in range(case.steps):
                h, s = cell.step(x[:, t], s)
                outs.append(h)
            y, final = torch.stack(outs, 1), s
        loss = (y * torch.randn(y.shape, generator=gen)).sum() + sum(t.sum() for t in _tensors(final))
        loss.backward()
        for name, p in params:
            assert p.grad is not None, f"{case.where()}: parameter {name} gets no gradient through {path}"
            assert torch.isfinite(p.grad).all(), f"{case.where()}: parameter {name} gets a NaN/inf gradient through {path}"
            assert p.grad.abs().sum() > 0, f"{case.where()}: parameter {name} gets an all-zero gradient through {path}"


def check_cell_autocast(case: CellCase) -> None:
    """forward runs under CPU bf16 autocast (as `rnnchat train --precision bf16` does) and stays close to fp32."""
    cell = case.make()
    state = case.warm_state(cell)
    x = case.inputs()
    with torch.no_grad():
        ref, _ = cell(x, state)
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y, final = cell(x, state)
        except RuntimeError:
            from rnnchat.engine.precision import cpu_bf16_problem

            if cpu_bf16_problem() is not None:  # this CPU cannot run bf16 recurrent layers: training refuses
                return                         # bf16 here, so there is nothing to check
            raise
    assert torch.isfinite(y.float()).all(), f"{case.where()}: NaN or inf under bf16 autocast"
    for t in _tensors(final):
        assert torch.isfinite(t.float()).all(), f"{case.where()}: NaN or inf state under bf16 autocast"
    _close(f"{case.where()}: forward under bf16 autocast and in fp32", y.float(), ref, 0.1)


def check_cell_save_load(case: CellCase) -> None:
    """A model built with the cell survives a save/load round trip (float32 exactly, float16 closely)."""
    from safetensors.torch import load_file, save_file

    with tempfile.TemporaryDirectory() as tmp:
        if not case.registered:  # a class under development: round-trip the cell's own tensors
            cell = case.make()
            names = list(cell.state_dict())
            try:
                save_file({k: v.contiguous() for k, v in cell.state_dict().items()}, f"{tmp}/cell.safetensors")
            except Exception as exc:  # noqa: BLE001 - report any failure as a contract break
                raise AssertionError(f"{case.where()}: its tensors cannot be saved as safetensors: {exc}") from None
            other = case.make(seed=case.seed + 1)
            other.load_state_dict(load_file(f"{tmp}/cell.safetensors"), strict=True)
            x, state = case.inputs(), cell.initial_state(case.batch)
            with torch.no_grad():
                _close(f"{case.where()}: outputs after a save/load round trip ({len(names)} tensors)",
                       other(x, state)[0], cell(x, state)[0], 0)
            return
        from rnnchat.engine.checkpoint import build_meta, load_checkpoint, save_checkpoint
        from rnnchat.engine.model import CharRNN, ModelConfig
        from rnnchat.core.vocab import Vocab

        vocab = Vocab(list("abcdefg\n"))
        torch.manual_seed(case.seed)
        model = CharRNN(ModelConfig(cell=case.name, vocab_size=len(vocab), hidden=case.hidden_size, layers=2,
                                    embedding=case.input_size, cell_options=dict(case.options)), case.cls).eval()
        meta = build_meta(model, vocab, corpus={"name": "contract", "sha256": "0" * 64}, val_loss=1.0)
        ids = torch.randint(0, len(vocab), (2, 11), generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            ref = model(ids)[0]
        for dtype, tol in (("float32", 0.0), ("float16", 1e-2)):
            path = Path(tmp) / f"m-{dtype}.safetensors"
            try:
                save_checkpoint(path, model, meta, dtype=dtype)
            except Exception as exc:  # noqa: BLE001
                raise AssertionError(f"{case.where()}: save_checkpoint failed: {type(exc).__name__}: {exc}") from None
            loaded = load_checkpoint(path, "cpu")
            assert loaded.meta["cell"] == case.name and loaded.meta["cell_options"] == case.options, \
                f"{case.where()}: the cell or its options did not survive the round trip"
            assert set(loaded.model.state_dict()) == set(model.state_dict()), \
                f"{case.where()}: tensor names changed in the round trip"
            with torch.no_grad():
                _close(f"{case.where()}: logits after a {dtype} save/load round trip", loaded.model(ids)[0], ref, tol)


def check_cell_device_move(case: CellCase, devices: Iterable | None = None) -> None:
    """Same numbers after .to(device) for every available device; the state follows the cell; and back."""
    cell = case.make()
    x = case.inputs()
    with torch.no_grad():
        ref_y, ref_s = cell(x, cell.initial_state(case.batch))
        ref_h, _ = cell.step(x[:, 0], cell.initial_state(case.batch))
    for device in devices or available_devices():
        device = torch.device(device)
        moved = case.make().to(device)
        state = moved.initial_state(case.batch)
        for t in _tensors(state):
            assert t.device.type == device.type, f"{case.where()}: after .to({device}) initial_state is on {t.device}"
        tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            with torch.no_grad():
                y, s = moved(x.to(device), state)
                h, _ = moved.step(x[:, 0].to(device), moved.initial_state(case.batch))
        finally:
            torch.backends.cudnn.allow_tf32 = tf32
        assert y.device.type == device.type, f"{case.where()}: forward on {device} returned outputs on {y.device}"
        _close(f"{case.where()}: forward on {device} and on cpu", y, ref_y, 1e-4)
        _close(f"{case.where()}: final state on {device} and on cpu", s, ref_s, 1e-4)
        _close(f"{case.where()}: step on {device} and on cpu", h, ref_h, 1e-4)
        back = moved.to("cpu")
        with torch.no_grad():
            _close(f"{case.where()}: forward after moving back to cpu", back(x, back.initial_state(case.batch))[0],
                   ref_y, 1e-4)


def check_cell_same_seed(case: CellCase) -> None:
    """The same seed builds the same weights; the same inputs give the same outputs, bit for bit."""
    a, b = case.make(), case.make()
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), f"{case.where()}: tensor {name} differs between two cells built with the same seed"
    x = case.inputs()
    with torch.no_grad():
        ya, sa = a(x, a.initial_state(case.batch))
        yb, sb = b(x, b.initial_state(case.batch))
    assert torch.equal(ya, yb) and _max_diff(sa, sb) == 0, \
        f"{case.where()}: the same seed and inputs gave different outputs"


CELL_CHECKS: dict[str, Callable[[CellCase], None]] = {
    "state": check_cell_state,
    "forward_matches_step": check_cell_forward_matches_step,
    "gradients": check_cell_gradients,
    "autocast": check_cell_autocast,
    "save_load": check_cell_save_load,
    "device_move": check_cell_device_move,
    "same_seed": check_cell_same_seed,
}


def check_cell(cell: str | type, options: dict | None = None, *, only: Iterable[str] | None = None,
               skip: Iterable[str] = (), input_size: int = 5, hidden_size: int = 8, batch: int = 3,
               steps: int = 9, seed: int = 0) -> None:
    """Run the cell contract checks on ``cell`` (a registered name or a class) built with ``options``."""
    case = _case(cell, options, input_size=input_size, hidden_size=hidden_size, batch=batch, steps=steps,
                 seed=seed)
    names = list(only) if only is not None else list(CELL_CHECKS)
    unknown = [n for n in [*names, *skip] if n not in CELL_CHECKS]
    if unknown:
        raise ValueError(f"unknown cell check(s) {unknown}; known: {', '.join(CELL_CHECKS)}")
    for name in names:
        if name not in skip:
            CELL_CHECKS[name](case)
