"""Fixtures every test module may use. Helpers that many modules call (the tiny model, tiny run
configs, noise images) are in tests/helpers.py, imported as `helpers`; the CLI's and the web app's
tests have theirs in tests/cli/cli_helpers.py and tests/serve/app_helpers.py. Test modules never
import one another."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "assets"
GOLDEN = {mode: DATA / f"ugatit_official_ch4_res2_img96_{mode}.pt" for mode in ("light", "full")}


def pytest_configure(config):
    # Tiny tensors: one thread is as fast, and far faster when another process shares the cores. Set
    # before any fixture runs, so that module-scoped fixtures (reference runs that a test compares with a
    # subprocess run with OMP_NUM_THREADS=1) compute with the same thread count bit for bit.
    torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core this process may use, at most four. Each test computes on one thread
    (above) and most wait on a CLI subprocess, so a worker keeps about one core busy; past four workers
    the suite is bound by its longest module (loadscope runs a module in one worker) and each more
    worker only adds its own torch import and memory."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores))


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)  # again for every test, in case one changed it


@pytest.fixture(scope="session", params=["light", "full"])
def golden(request) -> dict:
    """One official training iteration (tests/assets, described in docs/faithfulness.md):
    config, init_params, real_A/B, step1_*."""
    return torch.load(GOLDEN[request.param], weights_only=True)


@pytest.fixture(scope="session")
def need():
    """need("cv2") imports an optional test dependency (the extras: OpenCV, Gradio, selenium...).
    Without it the test is skipped on a developer's machine and fails in CI (CI set), where `.ci/run`
    installs every extra: a CI run must not pass by skipping."""

    def import_or_skip(module: str):
        if os.environ.get("CI"):
            return importlib.import_module(module)
        return pytest.importorskip(module)

    return import_or_skip
