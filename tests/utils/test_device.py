"""The one device resolver (`utils/device.py`): names, auto, and the GPU a distributed rank takes."""

from __future__ import annotations

import pytest
import torch

from ugatit.errors import UserError
from ugatit.utils.device import check_device_name, resolve_device


def test_names_are_checked_and_normalised():
    assert check_device_name(" CUDA:1 ") == "cuda:1"
    assert check_device_name("") == "auto"
    for bad in ("gpu", "cuda:x", "cpu:0", "mps:1"):
        with pytest.raises(UserError, match="is not a device"):
            check_device_name(bad)


def test_without_a_gpu_every_process_runs_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("ugatit.utils.device.mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("auto", local_rank=3) == torch.device("cpu")
    with pytest.raises(UserError, match="no CUDA GPU"):
        resolve_device("cuda", local_rank=0)


def test_each_rank_takes_the_gpu_of_its_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert [resolve_device(name, local_rank=r) for name, r in (("auto", 0), ("cuda", 1), ("auto", 3))] == [
        torch.device("cuda:0"),
        torch.device("cuda:1"),
        torch.device("cuda:1"),  # more ranks than GPUs: they share, in turn
    ]
    # A device named exactly is every rank's, as given.
    assert resolve_device("cuda:0", local_rank=1) == torch.device("cuda:0")
    assert resolve_device("cpu", local_rank=1) == torch.device("cpu")
    with pytest.raises(UserError, match="only 2 CUDA devices"):
        resolve_device("cuda:2")
