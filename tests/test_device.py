"""Device selection: best available, overrides, clear errors, no silent fallback."""

import pytest
import torch

from rnnchat.engine.device import pick_device
from rnnchat.core.errors import DeviceError


def test_cpu_override(monkeypatch):
    assert pick_device("cpu").type == "cpu"
    monkeypatch.setenv("RNNCHAT_DEVICE", "cpu")
    assert pick_device(None).type == "cpu"


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv("RNNCHAT_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device(None).type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device(None).type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(None).type == "cuda"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_an_error_not_a_fallback():
    with pytest.raises(DeviceError, match="CUDA is not available"):
        pick_device("cuda:1")


def test_nonsense_device():
    with pytest.raises(DeviceError, match="unknown device|unsupported"):
        pick_device("tpu9")
