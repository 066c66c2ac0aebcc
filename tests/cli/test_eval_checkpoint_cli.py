"""`ugatit eval --checkpoint --data`: translate the test split, then KID/FID and ground-truth metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import tiny
from ugatit.config import Config, ModelConfig
from ugatit.demo.shapes import make_shapes, write_shapes
from ugatit.demo.truth import ShapesTruth
from ugatit.evaluation import ground_truth_report, kid_evaluator
from ugatit.nn.model import UGATIT
from ugatit.weights.export import export_generators

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


def ugatit(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)]),
        "UGATIT_OFFLINE": "1",
        "TORCH_HOME": str(tmp / "torch-home"),
    }
    env.pop("UGATIT_INCEPTION_WEIGHTS", None)
    return subprocess.run([sys.executable, "-m", "ugatit", *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("evalckpt")
    model = tiny()
    export = export_generators(model, Config(model=model.config), tmp / "export" / "gen")
    write_shapes(tmp / "shapes", size=32, n_train=4, n_test=12, seed=0)
    return tmp, export


def test_checkpoint_mode_measures_kid_and_ground_truth(setup):
    tmp, export = setup
    out = tmp / "report.json"
    result = ugatit(
        "eval",
        "--checkpoint",
        str(export),
        "--data",
        str(tmp / "shapes"),
        "--feature-extractor",
        "standin_extractor:make",
        "--json",
        str(out),
        "--save-translations",
        str(tmp / "fakes"),
        # the KID flags measure here as they do with --real/--fake
        *("--block-size", "6", "--subsets", "3", "--subset-size", "5", "--seed", "2"),
        tmp=tmp,
    )
    assert result.returncode == 0, result.stderr
    assert "a2b: testA (12 images) translated, vs real testB" in result.stdout
    assert "KID x100" in result.stdout and "mean KID x100" in result.stdout and "identity L1" in result.stdout
    report = json.loads(out.read_text())
    for direction in ("a2b", "b2a"):
        entry = report["directions"][direction]
        assert entry["metrics"]["kid_paper"]["n_fake"] == 12 and "kid_subsets" in entry["metrics"]
        paper, subsets = entry["metrics"]["kid_paper"], entry["metrics"]["kid_subsets"]
        assert paper["block_size"] == 6 and paper["n_blocks"] == 2
        assert (subsets["subsets"], subsets["subset_size"], subsets["seed"]) == (3, 5, 2)
        assert len(list((tmp / "fakes" / direction).glob("*.png"))) == 12
        gt = report["ground_truth"][direction]
        assert gt["count"] == 12 and 0 < gt["l1"] < 1 and gt["identity_l1"] > 0.05  # the backgrounds differ
        # The scenes in ground_truth.json let eval look inside the shapes too.
        assert gt["shapes"] >= 12 and 0 <= gt["colour_accuracy"] <= 1 and gt["identity_foreground_l1"] > 0.1
        assert f"{direction}: {gt['colour_correct']} of {gt['shapes']} shapes the right colour" in result.stdout


def test_without_inception_weights_a_paired_task_still_gets_ground_truth(setup):
    tmp, export = setup
    result = ugatit("eval", "--checkpoint", str(export), "--data", str(tmp / "shapes"), "--direction", "b2a", tmp=tmp)
    assert result.returncode == 0, result.stderr
    assert "note: KID/FID skipped: FID Inception weights not found" in result.stdout
    assert "b2a " in result.stdout and "a2b " not in result.stdout.split("identity")[-1]

    # Both directions: what was translated, then at once why nothing is measured on it (no header over an
    # empty section), in the command line's terms; then the ground truth.
    result = ugatit("eval", "--checkpoint", str(export), "--data", str(tmp / "shapes"), tmp=tmp)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("a2b: testA (12 images) translated")
    assert lines[start + 1] == "b2a: testB (12 images) translated"
    assert lines[start + 2].startswith("note: KID/FID skipped: FID Inception weights not found")
    assert "give its path as --inception-weights" in lines[start + 2] and "`" not in result.stdout
    assert lines[start + 3] == "" and lines[start + 4].startswith("ground truth")
    assert "vs real" not in result.stdout and result.stdout.count("note:") == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--checkpoint", "EXPORT"], "--checkpoint and --data go together"),
        (["--checkpoint", "EXPORT", "--data", "NOWHERE"], "test split not found"),
        (["--checkpoint", "EXPORT", "--data", "SHAPES", "--real", "SHAPES"], "cannot be combined"),
        ([], "give --real DIR and --fake DIR"),
    ],
)
def test_bad_combinations_are_one_line_errors(setup, args, message):
    tmp, export = setup
    subst = {"EXPORT": str(export), "NOWHERE": str(tmp / "nowhere"), "SHAPES": str(tmp / "shapes")}
    result = ugatit("eval", *[subst.get(a, a) for a in args], tmp=tmp)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_dataset_without_scenes_gets_whole_image_metrics_and_a_wrong_count_is_refused(setup, tmp_path):
    tmp, export = setup
    import shutil

    old = tmp_path / "old"
    shutil.copytree(tmp / "shapes", old)
    info = json.loads((old / "ground_truth.json").read_text())
    scenes = info.pop("test_scenes")
    (old / "ground_truth.json").write_text(json.dumps(info))  # as written before the scenes were recorded
    result = ugatit("eval", "--checkpoint", str(export), "--data", str(old), tmp=tmp)
    assert result.returncode == 0, result.stderr
    assert "identity L1" in result.stdout and "inside the shapes" not in result.stdout

    (old / "ground_truth.json").write_text(json.dumps({**info, "test_scenes": scenes[:5]}))
    result = ugatit("eval", "--checkpoint", str(export), "--data", str(old), tmp=tmp)
    assert result.returncode == 2 and "describes 5 test scenes" in result.stderr and "Traceback" not in result.stderr


def test_ground_truth_of_a_perfect_translator_beats_the_identity_baseline():
    """A model whose generators return the ground truth scores L1 ~0 (up to 8-bit rounding)."""
    data = make_shapes(size=32, n_train=1, n_test=4, seed=1)

    class Oracle(UGATIT):
        def translate(self, images, direction="a2b"):
            from ugatit.data import eval_transform
            from ugatit.nn.model import Translation

            pool_in, pool_out = (data["testA"], data["testB"]) if direction == "a2b" else (data["testB"], data["testA"])
            lookup = {eval_transform(i, 32).numpy().tobytes(): eval_transform(o, 32) for i, o in zip(pool_in, pool_out)}
            out = torch.stack([lookup[x.numpy().tobytes()] for x in images])
            return Translation(out, torch.zeros(len(images), 2), torch.zeros(len(images), 1, 8, 8))

    oracle = Oracle(ModelConfig(img_size=32, ch=2, n_res=1, light=True), discriminators=False)
    report = ground_truth_report(oracle, data["testA"], data["testB"], objects=ShapesTruth.of_task(seed=1, count=4))
    for row in report.values():
        assert row["l1"] < 0.003 and row["cycle_l1"] < 0.003 and row["identity_l1"] > 0.05
        assert row["colour_accuracy"] == 1.0 and row["texture_accuracy"] == 1.0 and row["foreground_l1"] < 0.003
        assert row["identity_texture_accuracy"] == 0.0


def test_kid_evaluator_for_the_training_loop():
    sys.path.insert(0, str(HERE))
    from standin_extractor import make

    data = make_shapes(size=32, n_train=1, n_test=10, seed=2)
    evaluate = kid_evaluator(data["testA"], data["testB"], make())
    result = evaluate(tiny(), 1)
    assert set(result) == {"kid_a2b", "kid_b2a", "kid"}
    assert result["kid"] == pytest.approx((result["kid_a2b"] + result["kid_b2a"]) / 2)
