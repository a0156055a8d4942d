"""The CUDA fast path: one captured graph per character, sampling included, on the device.

A replay of the graph does, for batch 1, everything a character needs:

1. sample the next id from the current logits (repetition penalty over a ring
   of the last 64 ids, presence and frequency penalties over a count of the
   ids chosen so far, temperature, top-k, top-p, min-p, greedy when the
   temperature is 0) with the uniform number the host sent;
2. run ``model.step`` on that id (any cell whose ``step`` is capturable:
   the built-in ones are, a third-party one that synchronises is not, and
   falls back to eager steps);
3. write the new logits and state into the static buffers, and the id, its
   probability and a finite-logits flag into a 3-value output.

Per character the host writes eight numbers (:data:`KNOBS`) into pinned
memory, copies them over asynchronously, replays the graph, copies the
3-value output back and waits for it: that wait is the only
synchronisation, and it is the one needed to emit the character. The
sampling parameters are therefore read live, exactly like on the CPU.

The same code runs without a graph (``graph=False``) on any device: the tests
use that on the CPU to check the device sampler against the NumPy one, since
this machine has no GPU. The captured variant is untested on hardware here.
"""

from __future__ import annotations

import threading

import torch

from rnnchat.engine.model import state_map
from rnnchat.engine.sampling import REPETITION_WINDOW, TOP_P_SLACK
from rnnchat.core.errors import SamplingError

KNOBS = 8  # u, temperature, top_k, top_p, repetition penalty, min_p, presence, frequency


def knob_values(u: float, params) -> tuple:
    """The :data:`KNOBS` of one character: its uniform number and the sampling values."""
    return (u, params.temperature, params.top_k, params.top_p, params.repetition_penalty, params.min_p,
            params.presence_penalty, params.frequency_penalty)


def device_sample(logits: torch.Tensor, knobs: torch.Tensor, recent: torch.Tensor,
                  chosen: torch.Tensor | None = None):
    """Sample like :class:`rnnchat.engine.sampling.Sampler`, with static shapes and no host sync.

    ``logits[V]``, ``knobs[8]`` as :data:`KNOBS`, ``recent[V]`` bool (ids in the repetition window),
    ``chosen[V]`` float32 (how often each id was chosen so far; None: never).
    Returns 0-d tensors ``(id, probability at temperature 1, logits all finite)``.
    """
    x = logits.float()
    V = x.shape[0]
    u, temp, top_k, top_p, pen, min_p, presence, frequency = knobs.float().unbind(0)
    ok = torch.isfinite(x).all()
    raw = torch.exp(x - x.max())
    raw = raw / raw.sum()
    pen_x = torch.where(recent & (pen != 1.0), torch.where(x > 0, x / pen, x * pen), x)
    if chosen is not None:  # (x - 0 * count - 0 * seen is x itself: nothing changes when both are off)
        pen_x = pen_x - frequency * chosen - presence * (chosen > 0).float()
    greedy = pen_x.argmax()
    p = torch.exp((pen_x - pen_x.max()) * (1.0 / temp.clamp_min(1e-30)))
    sp, order = torch.sort(p, descending=True, stable=True)
    k = torch.where(top_k > 0, top_k, torch.full_like(top_k, V)).clamp(1, V).long()
    kth = sp.gather(0, (k - 1).view(1))
    sp = torch.where(sp >= kth, sp, torch.zeros_like(sp))
    cum = torch.cumsum(sp, 0)
    keep = ((cum - sp) < (top_p - TOP_P_SLACK) * cum[-1]) | (top_p >= 1.0)
    keep = keep & (sp >= min_p * sp[0])
    keep[0] = True
    sp = torch.where(keep, sp, torch.zeros_like(sp))
    p = torch.zeros_like(p).scatter_(0, order, sp)
    cdf = torch.cumsum(p, 0)
    sampled = (cdf <= u * cdf[-1]).sum().clamp_max(V - 1)
    choice = torch.where(temp == 0, greedy, sampled)
    return choice, raw.gather(0, choice.view(1))[0], ok


def _flat(state) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    state_map(out.append, state)
    return out


class DeviceSampledModel:
    """Static buffers (and, on CUDA, the captured graph) for one engine. One stream at a time
    uses them; a second concurrent stream gets ``None`` from :meth:`runner` and steps eagerly."""

    backend = "cuda-graph"

    def __init__(self, model, device: torch.device, graph: bool | None = None) -> None:
        self.model = model
        self.device = torch.device(device)
        self.use_graph = self.device.type == "cuda" if graph is None else graph
        if not self.use_graph:
            self.backend = "device-sampled"
        self.lock = threading.Lock()
        self.graph = None
        self.error: str | None = None
        dev = self.device
        with torch.no_grad():  # normal tensors: updated in place both in and out of inference mode
            self.V = model.head.out_features
            self.logits = torch.zeros(self.V, device=dev)
            self.state = state_map(lambda t: t.clone(), model.initial_state(1))
            self.flat_state = _flat(self.state)
            self.knobs = torch.zeros(KNOBS, device=dev)
            self.ring = torch.full((REPETITION_WINDOW,), self.V, dtype=torch.long, device=dev)
            self.ring_pos = torch.zeros(1, dtype=torch.long, device=dev)
            self.chosen = torch.zeros(self.V, device=dev)  # ids chosen in this stream (presence, frequency)
            self.one = torch.ones(1, device=dev)
            self.out = torch.zeros(3, dtype=torch.float64, device=dev)
            pin = self.device.type == "cuda"
            self.knobs_host = torch.zeros(KNOBS, pin_memory=pin)
            self.out_host = torch.zeros(3, dtype=torch.float64, pin_memory=pin)
        self.knobs_np = self.knobs_host.numpy()
        self.out_np = self.out_host.numpy()
        self.done = torch.cuda.Event() if self.device.type == "cuda" else None

    # ---- the per-character body ------------------------------------------------
    def body(self) -> None:
        recent = torch.zeros(self.V + 1, dtype=torch.bool, device=self.device)
        recent.index_fill_(0, self.ring, True)
        choice, prob, ok = device_sample(self.logits, self.knobs, recent[: self.V], self.chosen)
        ids = choice.view(1)
        self.chosen.index_add_(0, ids, self.one)
        self.ring.index_copy_(0, self.ring_pos, ids)
        self.ring_pos.add_(1).remainder_(REPETITION_WINDOW)
        logits, new_state = self.model.step(ids, self.state)
        self.logits.copy_(logits[0])
        for dst, src in zip(self.flat_state, _flat(new_state)):
            dst.copy_(src)
        self.out.copy_(torch.stack([choice.double(), prob.double(), ok.double()]))

    def capture(self) -> bool:
        """Capture the body as a CUDA graph (once). False, with ``error`` set, if it cannot be."""
        if self.graph is not None or not self.use_graph:
            return self.graph is not None
        if self.error is not None:
            return False
        try:
            with torch.inference_mode():
                saved = [t.clone() for t in self.flat_state]
                stream = torch.cuda.Stream(self.device)
                stream.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(stream):
                    for _ in range(3):  # warm up on the capture stream (cuBLAS handles, allocator)
                        self.body()
                torch.cuda.current_stream(self.device).wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                # thread_local: the chat app captures from its worker thread while the UI thread runs
                with torch.cuda.graph(graph, stream=stream, capture_error_mode="thread_local"):
                    self.body()
                for dst, src in zip(self.flat_state, saved):
                    dst.copy_(src)
                torch.cuda.synchronize(self.device)
            self.graph = graph
            return True
        except Exception as exc:  # a cell whose step cannot be captured: eager steps instead
            self.error = f"{type(exc).__name__}: {exc}"
            self.graph = None
            return False

    def runner(self, logits, state, sampler) -> "DeviceRunner | None":
        if self.use_graph and not self.capture():
            return None
        if not self.lock.acquire(blocking=False):
            return None
        try:
            return DeviceRunner(self, logits, state, sampler)
        except BaseException:
            self.lock.release()
            raise


class DeviceRunner:
    """One stream's use of the static buffers: ``next(params, sampler) -> (id, prob)``."""

    def __init__(self, dm: DeviceSampledModel, logits, state, sampler) -> None:
        self.dm = dm
        self.closed = False
        with torch.inference_mode():
            dm.logits.copy_(logits.reshape(-1))
            for dst, src in zip(dm.flat_state, _flat(state)):
                dst.copy_(src)
            recent = sampler.recent[-REPETITION_WINDOW:]
            ring = torch.full((REPETITION_WINDOW,), dm.V, dtype=torch.long)
            if recent:
                ring[: len(recent)] = torch.tensor(recent, dtype=torch.long).clamp(0, dm.V)
            dm.ring.copy_(ring)
            dm.ring_pos.fill_(len(recent) % REPETITION_WINDOW)
            dm.chosen.copy_(torch.from_numpy(sampler.chosen_counts(dm.V)))
        self._run = dm.graph.replay if dm.graph is not None else self._eager

    def _eager(self) -> None:
        with torch.inference_mode():
            self.dm.body()

    def next(self, params, sampler) -> tuple[int, float]:
        dm = self.dm
        dm.knobs_np[:] = knob_values(sampler.uniform(), params)
        dm.knobs.copy_(dm.knobs_host, non_blocking=True)
        self._run()
        dm.out_host.copy_(dm.out, non_blocking=True)
        if dm.done is not None:
            dm.done.record()
            dm.done.synchronize()
        out = dm.out_np
        if not out[2]:
            raise SamplingError("model produced invalid values (NaN or infinite logits); "
                                "the checkpoint may be corrupt or training diverged")
        idx = int(out[0])
        sampler.accept(idx)
        return idx, float(out[1])

    def export(self):
        """(logits, state) after every character so far: new tensors the stream keeps."""
        with torch.inference_mode():
            return self.dm.logits.clone(), state_map(lambda t: t.clone(), self.dm.state)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.dm.lock.release()
