"""`ugatit train` says early, once, how long the rest of the run takes at the rate it measured, and on a
CPU that a paper-length run is a GPU job (a subprocess, stopped by SIGTERM once it has said so)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image

PROJECTED = re.compile(
    r"projected: ([\d.]+) it/s measured over iterations (\d+)-(\d+), so the remaining ([\d,]+) of "
    r"1,000,000 iterations take about ([\d.]+) (h|days) at this rate \(until \d{4}-\d\d-\d\d \d\d:\d\d\)"
)


def test_a_cpu_run_of_the_paper_length_is_projected_and_called_a_gpu_job(tmp_path):
    rng = np.random.default_rng(0)
    for domain in ("trainA", "trainB"):
        (tmp_path / "data" / domain).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (72, 72, 3), dtype=np.uint8)).save(
                tmp_path / "data" / domain / f"{i}.png"
            )
    command = [sys.executable, "-m", "ugatit", "train", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    # Big enough that no CPU runs it at the 11.6 it/s that would bring 1M iterations under a day (about
    # 1 it/s on the test machine's shared cores), small enough that 22 iterations take seconds.
    command += ["--img-size", "64", "--ch", "16", "--n-res", "4", "--light", "--device", "cpu", "--workers", "0"]
    command += ["--no-progress"]  # the paper's 1,000,000 iterations, the default
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        start_new_session=True,
    )
    said = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line, f"ugatit train ended before projecting: {said}"
            said.append(line)
            if line.startswith("projected:"):
                break
        os.killpg(process.pid, signal.SIGTERM)
        _, rest = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    stderr = "".join(said) + rest
    assert process.returncode == 143, stderr
    assert stderr.count("projected:") == 1, stderr
    line = said[-1]
    found = PROJECTED.match(line)
    assert found, line
    rate, first, last, remaining, amount, unit = found.groups()
    rate, first, last = float(rate), int(first), int(last)
    days = float(amount) / (24 if unit == "h" else 1)
    remaining = int(remaining.replace(",", ""))
    # After a warm-up of 2 iterations; over 20 iterations or more, or fewer when 60 s passed first on a
    # slow or busy machine (tests/training/test_projection.py checks those rules exactly).
    assert first == 3 and last - first + 1 >= 2
    assert remaining == 1_000_000 - last
    # The time follows from the rate and the iterations left; the rate is printed to 3 significant digits
    # (0.5% relative), the time to 0.1 of its unit.
    assert abs(remaining / rate / 86400 - days) <= 0.05 / (24 if unit == "h" else 1) + 0.005 * days, line
    assert "On a CPU this is a GPU job" in line and "ugatit bench" in line and "How long training takes" in line
