"""`ugatit bench` on the CPU at a tiny size: a row per case with every column, a CUDA-only option that says so
instead of failing, and the JSON and markdown it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from ugatit.bench import PHASES, markdown
from ugatit.config import OptimConfig


def test_bench_measures_each_case_and_reports_what_cannot_run(tmp_path):
    out = tmp_path / "bench.json"
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ugatit",
            "bench",
            "--device",
            "cpu",
            "--img-size",
            "32",
            "--ch",
            "4",
            "--n-res",
            "1",
            "--models",
            "light",
            "--precisions",
            "fp32",
            "--options",
            "eager,graph",
            "--iters",
            "1",
            "--warmup",
            "1",
            "--phase-iters",
            "1",
            "--json",
            str(out),
            "--markdown",
            str(tmp_path / "b.md"),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    rows = {row["option"]: row for row in json.loads(out.read_text())["rows"]}
    eager = rows["eager"]
    assert eager["iters_per_second"] > 0 and eager["peak_gib"] > 0
    assert set(eager["phases_ms"]) == set(PHASES) and all(eager["phases_ms"][p] > 0 for p in PHASES[:-1])
    # On the CPU the phases split the timed iterations, "other" being the rest: they add up to ms / it
    # (to float rounding; the 1e-6 ms allow for the sum's order).
    assert abs(sum(eager["phases_ms"].values()) - 1e3 * eager["seconds_per_iter"]) < 1e-6
    assert eager["ops_per_iter"] > 1000
    # Against a clock of the test's own: the one timed iteration ran inside the process, and the paper's
    # 1M iterations (OptimConfig's default) cannot take longer than 1M runs of the whole process.
    assert 0 < eager["seconds_per_iter"] < elapsed and eager["iters_per_second"] > 1 / elapsed
    assert 0 < eager["paper_days"] < elapsed * OptimConfig().iterations / 86400
    assert rows["graph"]["error"] == "CUDA only"
    table = [line for line in result.stdout.strip().splitlines() if line.startswith("|")]
    assert "| light | fp32 | eager |" in result.stdout and "CUDA only |" in table[-1]
    assert len({line.count("|") for line in table}) == 1  # every row has every column
    # Under the table, what each phase column measures, and that they add up to ms / it here.
    legend = result.stdout.split(table[-1], 1)[1]
    assert "add up to ms / it" in legend
    for phase in PHASES:
        assert f"- {phase}: " in legend
    assert (tmp_path / "b.md").read_text().strip().endswith(legend.strip())


def test_a_failed_case_is_a_row_not_a_crash():
    rows = [{"model": "full", "precision": "bf16", "option": "compile", "error": "did not finish in 300 s"}]
    table = markdown(rows).splitlines()
    assert table[-1].startswith("| full | bf16 | compile |") and "did not finish" in table[-1]
    assert table[0].count("|") == table[-1].count("|")
