"""`ugatit demo` end to end: it trains from scratch, measures inside the shapes, and says so first.

Trains with a fixed seed (32 px, 300 iterations: about a minute on two cores). In that time the model
learns the background (whole-image L1 falls well below the untrained model's and the input's), not yet
the shapes; the report must say which: it leads with the object metrics, next to the "one colour for
all" baseline that a collapsed translator would reach (tests/demo/test_truth.py pins that baseline
down). That the default demo learns the shapes is measured by benchmarks/bench_demo_quality.py
(docs/benchmarks.md), too slow for CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def run_demo(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
    args = ["--out", str(out), "--img-size", "32", "--iters", "300", "--train-count", "200",
            "--test-count", "16", "--eval-every", "100", "--no-progress", *extra]  # fmt: skip
    return subprocess.run([sys.executable, "-m", "ugatit", "demo", *args], capture_output=True, text=True,
                          env=env, timeout=600)  # fmt: skip


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def test_demo_learns_the_task_and_writes_a_report(tmp_path):
    out = tmp_path / "demo"
    result = run_demo(out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"report: {out / 'report.html'}" in result.stdout

    summary = json.loads((out / "report.json").read_text())
    for direction in ("a2b", "b2a"):
        start = summary["ground_truth"]["step_0"][direction]
        final = summary["ground_truth"]["final"][direction]
        # 300 iterations at 32 px learn the background and the layout, not yet the shapes. Measured:
        # whole-image L1 0.074 / 0.067 against 0.164 / 0.138 at step 0 and 0.114 for the input itself.
        assert final["l1"] < 0.8 * final["identity_l1"], (direction, final)
        assert final["l1"] < 0.6 * start["l1"], (direction, final, start)
    assert [point["step"] for point in summary["curve"]] == [0, 100, 200, 300]

    # The object metrics are there for every direction, with the baselines that put them in context.
    collapsed = summary["baselines"]["one_colour_for_all"]
    for direction in ("a2b", "b2a"):
        final = summary["ground_truth"]["final"][direction]
        assert final["shapes"] > 0 and 0 <= final["colour_accuracy"] <= 1
        assert final["colour_correct"] == round(final["colour_accuracy"] * final["shapes"])
        # One colour for all is right for exactly the shapes of that colour: never all of them here.
        assert 0 < collapsed[direction]["colour_accuracy"] < 1
    assert len(summary["headline"]) == 2 and summary["headline"][0].startswith("a2b: ")
    assert "shapes the right colour" in summary["headline"][0] and summary["headline"][0] in result.stdout

    page = (out / "report.html").read_text()
    # The page leads with the sentence about the shapes, before any table or picture.
    assert page.index(summary["headline"][0].split(";")[0]) < page.index("<table")
    for text in ("one colour for all", "Test translations a2b", "Test translations b2a", "Whole-image metrics", "<svg"):
        assert text in page
    links = Links()
    links.feed(page)
    assert len(links.sources) >= 4 * 8 * 2 and all((out / src).is_file() for src in links.sources)
    assert len(list((out / "data" / "testA").glob("*.png"))) == 16 and (out / "data" / "ground_truth.json").is_file()
    assert (out / "run" / "export" / "ugatit_generators.safetensors").is_file()


def test_demo_refuses_to_overwrite_other_files(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_demo(out, "--force")
    assert result.returncode == 2 and "not empty" in result.stderr and "Traceback" not in result.stderr
    assert (out / "keep.txt").read_text() == "mine"


def test_force_replaces_an_interrupted_demo(tmp_path):
    out = tmp_path / "demo"
    (out / "run").mkdir(parents=True)  # what a demo stopped during training leaves
    (out / "data" / "testA").mkdir(parents=True)
    refused = run_demo(out, "--iters", "1")
    assert refused.returncode == 2 and "pass --force" in refused.stderr
    result = run_demo(out, "--iters", "2", "--eval-every", "0", "--force")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "report.html").is_file()
