"""When the projection of a run's end is said (once, after the warm-up and enough iterations and seconds)
and what it says on each device, with the clock under the test's control."""

from __future__ import annotations

import pytest
import torch

from ugatit.training import projection
from ugatit.training.projection import MAX_SECONDS, MIN_ITERATIONS, MIN_SECONDS, WARMUP, Projection, duration


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(projection.time, "monotonic", lambda: now[0])
    return now


def run(p: Projection, steps: range, clock: list[float], seconds_per_step: float) -> dict[int, str]:
    said = {}
    for step in steps:
        clock[0] += seconds_per_step
        text = p.observe(step)
        if text is not None:
            said[step] = text
    return said


def test_said_once_after_the_warmup_and_enough_iterations_and_seconds(clock):
    cpu = torch.device("cpu")
    fast = Projection(cpu, 1_000_000, start_step=0)
    # 8 it/s (0.125 s is exact in binary: the sums of the fake clock hit MIN_SECONDS exactly): 20
    # iterations take 2.5 s, under MIN_SECONDS, so the projection waits for 40.
    said = run(fast, range(1, 1000), clock, 0.125)
    start = WARMUP["other"]
    assert list(said) == [start + 40] and MIN_SECONDS == 40 * 0.125
    assert said[start + 40].startswith(f"projected: 8 it/s measured over iterations {start + 1}-{start + 40}")
    assert "take about 34.7 h" in said[start + 40] and "GPU job" in said[start + 40]

    slow = Projection(cpu, 1_000_000, start_step=500)  # a resumed run: the warm-up counts from there
    said = run(slow, range(501, 520), clock, 25.0)  # 25 s an iteration: MAX_SECONDS with fewer iterations
    # Measured from step 502: 3 iterations (75 s) pass MAX_SECONDS, far short of MIN_ITERATIONS.
    assert MAX_SECONDS == 60 and MIN_ITERATIONS == 20 and WARMUP["other"] == 2
    assert list(said) == [505] and said[505].startswith("projected: 0.04 it/s measured over iterations 503-505")


def test_a_run_that_ends_first_and_a_gpu_run_are_not_called_gpu_jobs(clock, monkeypatch):
    short = Projection(torch.device("cpu"), 15, start_step=0)
    assert run(short, range(1, 16), clock, 1.0) == {}  # over before enough was measured

    hours = Projection(torch.device("cpu"), 3600 * 6, start_step=0)  # 2 it/s: 3 h
    (text,) = run(hours, range(1, 100), clock, 0.5).values()
    assert "about 3.0 h" in text and "GPU job" not in text

    # CUDA: a longer warm-up (the graph is captured and checked), no advice to move to a GPU. There is no
    # CUDA here: the clock's waits for the device are not under test.
    monkeypatch.setattr(projection, "synchronize", lambda device: None)
    gpu = Projection(torch.device("cuda"), 1_000_000, start_step=0)
    ((step, text),) = run(gpu, range(1, 200), clock, 0.125).items()
    assert step == WARMUP["cuda"] + 40 and "GPU job" not in text and "34.7 h" in text


@pytest.mark.parametrize(
    "seconds, text",
    [(45, "45 s"), (600, "10 min"), (7.5 * 3600, "7.5 h"), (47 * 3600, "47.0 h"), (10 * 86400, "10.0 days")],
)
def test_durations_read_in_the_unit_a_person_would_use(seconds, text):
    assert duration(seconds) == text
