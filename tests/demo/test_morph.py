"""The morph task (circles <-> the squares around them): deterministic, exact test pairs that differ only
in the outline, a shape metric that scores the answer 1 and the input 0, and its way through
`ugatit make-dataset` and `ugatit eval --checkpoint`."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch

from ugatit.cli import main
from ugatit.config import Config, ModelConfig
from ugatit.data.transforms import eval_transform
from ugatit.demo import morph
from ugatit.demo.morph import BACKGROUND, PALETTE
from ugatit.nn.model import UGATIT
from ugatit.weights.export import export_generators


def batch(images, size=48):
    return torch.stack([eval_transform(image, size) for image in images])


def test_the_pairs_differ_only_by_the_corners_of_the_square_around_the_circle():
    data = morph.make_morph(size=48, n_train=3, n_test=6, seed=0)
    again = morph.make_morph(size=48, n_train=3, n_test=6, seed=0)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(data["testA"], again["testA"]))
    assert not np.array_equal(np.asarray(data["trainA"][0]), np.asarray(data["trainB"][0]))  # unpaired
    background = np.asarray(BACKGROUND)
    for a, b, scene in zip(data["testA"], data["testB"], (morph.scene_for(0, "test", "A", i) for i in range(6))):
        a, b = np.asarray(a, int), np.asarray(b, int)
        assert np.array_equal(a[0, 0], background) and np.array_equal(b[0, 0], background)
        # Every pixel the circle covers is the square's too: B only adds the corners, in the same colour.
        painted_a = np.abs(a - background).sum(axis=2) > 30
        painted_b = np.abs(b - background).sum(axis=2) > 30
        assert not (painted_a & ~painted_b).any() and (painted_b & ~painted_a).sum() > 30
        colour = np.asarray(PALETTE[scene.shapes[0].color])
        assert np.abs(b[painted_b & painted_a].mean(axis=0) - colour).max() < 30


def test_the_images_are_those_the_published_study_was_run_on():
    """docs/ablations.md publishes a study on this task: its images must not change when the shapes task
    does. The digest is of the pixels `ugatit make-dataset morph DIR --size 48 --count 500 --test-count 64`
    wrote when the study was run (the first six images of each folder); every pixel is an exact mean of
    sixteen integer samples (no trigonometry: circles and upright squares), so it is the same on any CPU."""
    digest = hashlib.sha256()
    for split in ("train", "test"):
        for domain in ("A", "B"):
            for image in morph.MorphDataset(domain, split, size=48, count=6, seed=0):
                digest.update(np.asarray(image.convert("RGB")).tobytes())
    assert digest.hexdigest() == "eca9826199865a0c3a36176ad83dd8ef7598cf3c4e9ef22f9847953b4c1627e2"
    assert morph.ground_truth_info(48, 500, 64, 0)["palette"] == [[225, 45, 45], [45, 190, 60], [50, 90, 230]]


def test_the_shape_metric_scores_the_answer_one_and_the_input_zero():
    data = morph.make_morph(size=48, n_train=0, n_test=8, seed=3)
    truth = morph.MorphTruth.of_task(3, 8)
    for direction, src, tgt in (("a2b", "testA", "testB"), ("b2a", "testB", "testA")):
        score = truth.score()
        score.update(direction, 0, batch(data[src]), batch(data[tgt]), batch(data[tgt]))
        row = score.compute()[direction]
        assert row["shapes"] == 8 and row["shape_change"] == 1.0 and row["shapes_changed"] == 8
        assert row["colour_accuracy"] == 1.0 and row["foreground_l1"] == 0.0
        assert row["identity_shape_change"] == 0.0 and row["identity_shapes_changed"] == 0
        assert row["identity_foreground_l1"] > 0.03
        # A uniform grey picture keeps neither shape: it is wrong wherever the shapes differ.
        flat = torch.full_like(batch(data[tgt]), float(BACKGROUND[0]) / 127.5 - 1)
        score = truth.score()
        score.update(direction, 0, batch(data[src]), flat, batch(data[tgt]))
        changed_to_background = score.compute()[direction]["shape_change"]
        assert changed_to_background == (1.0 if direction == "b2a" else 0.0)  # b2a must remove corners only


def test_make_dataset_and_eval_report_the_shape_change(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UGATIT_OFFLINE", "1")  # no Inception download: KID is skipped with a note
    root = tmp_path / "morph"
    assert main(["make-dataset", "morph", str(root), "--size", "32", "--count", "2", "--test-count", "4"]) == 0
    info = json.loads((root / "ground_truth.json").read_text())
    assert info["task"] == "morph" and len(info["test_scenes"]) == 4
    torch.manual_seed(0)
    model = UGATIT(ModelConfig(img_size=32, ch=4, n_res=1, light=True), discriminators=False)
    checkpoint = export_generators(model, Config(model=model.config), tmp_path / "g.safetensors")
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(root), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "KID/FID skipped" in out
    assert "a2b: " in out and "circles made squares (shape change" in out and "squares made circles" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert {"shape_change", "colour_accuracy", "identity_shape_change"} <= set(report["ground_truth"]["a2b"])
