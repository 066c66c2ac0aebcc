"""Can the data loader feed the GPU? Training images per second: per worker, and through UnpairedLoader.

    python benchmarks/bench_loader.py [--source-size 512] [--img-size 256] [--count 48] [--workers 0,1,2]

Writes `count` photo-like images (a smooth random field plus grain, so that PNG compresses like a photo,
not like flat shapes) at --source-size as PNG and as JPEG (quality 90) into a temporary folder, then
measures the official training transform (decode, flip, resize to img_size + 30, random crop, to tensor):
one process decoding one domain (what one worker does), and UnpairedLoader batches with each worker
count (each batch holds one image of each domain). At batch size 1, N iterations per second need 2N
training images per second.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ugatit.data.sources import FileSource
from ugatit.data.unpaired import UnpairedLoader, _DomainStream


def write_images(folder: Path, count: int, size: int, fmt: str, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        coarse = rng.uniform(0, 255, (size // 32, size // 32, 3)).astype(np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
        pixels = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        if fmt == "jpg":
            image.save(folder / f"{i:03d}.jpg", quality=90)
        else:
            image.save(folder / f"{i:03d}.png")
    return folder


def per_worker(folder: Path, img_size: int, seconds: float = 4.0) -> float:
    """Training images per second decoded and transformed by one process."""
    stream = _DomainStream(FileSource.from_folder(folder), "A", seed=0, img_size=img_size, margin=30, flip=True)
    stream.sample(0)  # imports, first file
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        tensor, _ = stream.sample(done + 1)
        assert tensor is not None and tensor.shape[-1] == img_size
        done += 1
    return done / (time.perf_counter() - start)


def through_loader(folder_a: Path, folder_b: Path, img_size: int, workers: int, batches: int = 60) -> float:
    """Training images per second out of UnpairedLoader with `workers` processes (after its start-up)."""
    loader = UnpairedLoader(
        FileSource.from_folder(folder_a),
        FileSource.from_folder(folder_b),
        img_size=img_size,
        seed=0,
        num_workers=workers,
    )
    try:
        next(loader)
        start = time.perf_counter()
        for _ in range(batches):
            next(loader)
        return 2 * batches / (time.perf_counter() - start)
    finally:
        loader.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-size", type=int, default=512)
    parser.add_argument("--img-size", type=int, default=256)
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--workers", default="0,1,2", help="comma-separated worker counts for the loader rows")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with open("/proc/cpuinfo") as info:
        cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "?")
    print(
        f"\n{cpu}, {os.cpu_count()} cores, torch {torch.__version__}: {args.source_size} px files -> "
        f"{args.img_size} px training crops\n"
    )
    print(
        "| files | per worker (img/s) | "
        + " | ".join(f"loader, {w} workers (img/s)" for w in args.workers.split(","))
        + " |"
    )
    print("|---|---:|" + "---:|" * len(args.workers.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("jpg", "png"):
            a = write_images(Path(tmp) / fmt / "A", args.count, args.source_size, fmt, seed=1)
            b = write_images(Path(tmp) / fmt / "B", args.count, args.source_size, fmt, seed=2)
            mean_kb = sum(p.stat().st_size for p in a.iterdir()) / args.count / 1024
            rates = [through_loader(a, b, args.img_size, int(w)) for w in args.workers.split(",")]
            print(
                f"| {fmt.upper()}, {mean_kb:.0f} KB | {per_worker(a, args.img_size):.0f} | "
                + " | ".join(f"{r:.0f}" for r in rates)
                + " |"
            )


if __name__ == "__main__":
    main()
