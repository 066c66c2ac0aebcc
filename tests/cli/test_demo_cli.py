"""`ugatit demo` end to end: it trains from scratch, learns the shapes, and says so first.

Trains the demo's own configuration with a fixed seed for 300 iterations instead of 1000 (48 px,
about 90 s on two cores) and checks it the way the report judges it: inside the shapes. Measured here:
32 of 32 test shapes the right colour going into B and 24 of 32 coming back, 30 and 32 of 32 with the
stripes right, foreground L1 0.189 / 0.169 against 0.316 / 0.288 at step 0. A translator that painted
every shape one colour gets at most half the colours right (the two shapes of an image always differ):
the colour threshold rejects it, and the test checks that on the run's own baseline.
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
    args = [
        "--out",
        str(out),
        "--img-size",
        "48",
        "--iters",
        "300",
        "--train-count",
        "200",
        "--test-count",
        "16",
        "--eval-every",
        "100",
        "--no-progress",
        *extra,
    ]
    return subprocess.run(
        [sys.executable, "-m", "ugatit", "demo", *args], capture_output=True, text=True, env=env, timeout=600
    )


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
    assert [point["step"] for point in summary["curve"]] == [0, 100, 200, 300]
    final, start = summary["ground_truth"]["final"], summary["ground_truth"]["step_0"]
    collapsed = summary["baselines"]["one_colour_for_all"]
    # Right colours, over both directions: a collapsed translator cannot pass, this one must.
    threshold = 0.6
    colour = lambda rows: sum(rows[d]["colour_accuracy"] for d in ("a2b", "b2a")) / 2
    assert colour(collapsed) <= 0.5 < threshold, collapsed
    assert colour(final) >= threshold, final
    for direction in ("a2b", "b2a"):
        row = final[direction]
        assert row["colour_correct"] == round(row["colour_accuracy"] * row["shapes"]) and row["shapes"] == 32
        assert row["texture_accuracy"] >= 0.75, (direction, row)  # outlined into B, flat out of it
        assert row["foreground_l1"] < 0.8 * start[direction]["foreground_l1"], (direction, row)
        assert row["l1"] < 0.7 * start[direction]["l1"], (direction, row)
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
