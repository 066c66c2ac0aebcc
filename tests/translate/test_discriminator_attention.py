"""`ugatit translate --attention` with a checkpoint that holds the discriminators: beside the generator's
map, the CAM maps of the target domain's global and local discriminators on the translation (the paper's
Figure 2 (c)-(d)), written and shown in index.html; and what it says when a model has no CAM or no
discriminators."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ugatit.cli import main
from ugatit.config import Config, DataConfig, ModelConfig, OptimConfig, TrainConfig, ablation
from ugatit.data.transforms import eval_transform
from ugatit.training import train
from ugatit.training.run_dir import EXPORT_FILE
from ugatit.viz.images import heatmap_to_rgb, overlay
from ugatit.weights import load_model

SIZE = 32


def noise(folder: Path, count: int, seed: int, size: tuple[int, int] = (SIZE, SIZE)) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Tiny training runs (two iterations) of the paper's model and of the ablation without any CAM."""
    root = tmp_path_factory.mktemp("runs")
    data = {d: noise(root / f"train{d}", 3, seed) for d, seed in (("A", 1), ("B", 2))}
    found = {}
    for variant in ("full", "no-cam"):
        cfg = Config(
            model=ablation(ModelConfig(img_size=SIZE, ch=4, n_res=1, light=True), variant),
            optim=OptimConfig(iterations=2),
            data=DataConfig(num_workers=0),
            train=TrainConfig(device="cpu", sample_every=0, save_every=0),
        )
        found[variant] = train(cfg, data["A"], data["B"], root / variant, progress=False, tensorboard=False).run_dir
    return found


class Page(HTMLParser):
    """The index's column headers, image sources and alt texts, and its text."""

    def __init__(self, text: str):
        super().__init__()
        self.headers: list[str] = []
        self.images: dict[str, str] = {}
        self.text: list[str] = []
        self._in_th = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in_th = tag == "th"
        if tag == "img":
            self.images[attrs["alt"]] = attrs["src"]

    def handle_data(self, data):
        if self._in_th:
            self.headers.append(data)
        self.text.append(data)

    def handle_endtag(self, tag):
        self._in_th = False


def translate(checkpoint: Path, inputs: Path, out: Path, direction: str) -> Page:
    args = ["translate", "--checkpoint", str(checkpoint), "--input", str(inputs), "--output", str(out)]
    assert main([*args, "--direction", direction, "--attention", "--no-progress"]) == 0
    return Page((out / "index.html").read_text())


@pytest.mark.parametrize("direction, target", [("a2b", "B"), ("b2a", "A")])
def test_the_target_domains_discriminators_are_shown_on_the_translation(runs, tmp_path, direction, target):
    inputs = noise(tmp_path / "in", 2, seed=7)
    page = translate(runs["full"], inputs, tmp_path / "out", direction)
    assert page.headers[:5] == ["file", "input", "output", "attention", "global D attention"]
    assert "local D attention" in page.headers
    notes = " ".join(page.text)
    assert f"disG{target} (global) and disL{target} (local)" in notes and "Figure 2 (c)-(d)" in notes

    model, _ = load_model(runs["full"], discriminators=True)
    for name in ("im0", "im1"):
        for scale in ("global", "local"):
            written = tmp_path / "out" / f"{name}_attention_{scale}_D.png"
            alt = f"{scale} discriminator attention on the translation of {name}.png"
            assert page.images[alt] == written.name
            # The overlay is that discriminator's CAM heatmap on the translation, blended over it: made
            # here again from the model, it is the same picture (8-bit, so equal up to rounding).
            source = Image.open(inputs / f"{name}.png").convert("RGB")
            fake = model.translate(eval_transform(source, SIZE)[None], direction).image
            translation = np.asarray(Image.open(tmp_path / "out" / f"{name}.png").convert("RGB"))
            heat = model.judge_translation(fake, direction)[scale].heatmap[0, 0]
            expected = overlay(translation, heatmap_to_rgb(heat, (SIZE, SIZE)))
            got = np.asarray(Image.open(written).convert("RGB")).astype(int)
            assert np.abs(got - expected.astype(int)).max() <= 1
            # ... and not the source domain's discriminator's
            other = "A" if target == "B" else "B"
            wrong = model.judge(fake, other)[scale].heatmap[0, 0]
            assert np.abs(got - overlay(translation, heatmap_to_rgb(wrong, (SIZE, SIZE))).astype(int)).max() > 1


def test_no_cam_and_no_discriminators_are_said_not_drawn(runs, tmp_path):
    inputs = noise(tmp_path / "in", 1, seed=8, size=(40, 30))
    page = translate(runs["no-cam"], inputs, tmp_path / "no-cam", "a2b")
    assert not list((tmp_path / "no-cam").glob("*_attention*.png"))
    assert "attention" not in " ".join(page.headers)
    notes = " ".join(page.text)
    assert "Attention: none, this model's generators have no CAM (ablation no-cam)" in notes
    assert "Discriminators' attention: none, this model's discriminators have no CAM" in notes

    page = translate(runs["full"] / EXPORT_FILE, inputs, tmp_path / "export", "a2b")
    assert (tmp_path / "export" / "im0_attention.png").is_file()
    assert not list((tmp_path / "export").glob("*_D.png"))
    assert "the model was loaded without discriminators" in " ".join(page.text)
