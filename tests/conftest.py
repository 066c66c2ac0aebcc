from __future__ import annotations

from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "assets"
GOLDEN = {mode: DATA / f"ugatit_official_ch4_res2_img96_{mode}.pt" for mode in ("light", "full")}


@pytest.fixture(autouse=True)
def _few_threads():
    # Tiny tensors: one thread is as fast, and far faster when another process shares the cores.
    torch.set_num_threads(1)


@pytest.fixture(scope="session", params=["light", "full"])
def golden(request) -> dict:
    """One official training iteration (tests/assets, described in docs/faithfulness.md): config, init_params, real_A/B, step1_*."""
    return torch.load(GOLDEN[request.param], weights_only=True)
