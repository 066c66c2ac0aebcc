"""What many test modules build: the tiny model, tiny training configs and noise images. Imported as
`helpers` (tests/ is on the import path through tests/conftest.py), so that no test module imports
another test module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ugatit.config import Config, DataConfig, ModelConfig, OptimConfig, TrainConfig
from ugatit.nn.model import UGATIT

#: Iterations of `tiny_config`'s runs.
ITERS = 6


def tiny(light: bool = True, *, seed: int = 0, discriminators: bool = True, img_size: int = 32) -> UGATIT:
    """The tests' model: 32 px, 4 channels, one residual block, its weights drawn from `seed`. Without
    the discriminators when only translating."""
    torch.manual_seed(seed)
    return UGATIT(ModelConfig(img_size=img_size, ch=4, n_res=1, light=light), discriminators=discriminators)


def tiny_config(**train_options) -> Config:
    """A run of `ITERS` iterations on a light model of 2 channels at 32 px, one process, on the CPU."""
    run = dict(device="cpu", log_every=1, sample_every=3, save_every=2, keep_last=2)
    run.update(train_options)
    return Config(
        model=ModelConfig(img_size=32, ch=2, n_res=1, light=True),
        optim=OptimConfig(iterations=ITERS),  # lr decays over the second half: resume must get it right
        data=DataConfig(num_workers=0),
        train=TrainConfig(**run),
    )


def noise(seed: int, size: tuple[int, int] = (40, 36)) -> Image.Image:
    """An RGB image of uniform noise, `size` = (width, height)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def write_plain(folder: Path, count: int, seed: int) -> None:
    """`count` noise PNGs, plain_0.png ..., the i-th drawn from seed + i."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        noise(seed + i).save(folder / f"plain_{i}.png")


def write_images(folder: Path, count: int, seed: int, size: tuple[int, int] = (40, 36)) -> Path:
    """`count` noise PNGs, 00.png ..., drawn in turn from one generator seeded with `seed`."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:02d}.png")
    return folder
