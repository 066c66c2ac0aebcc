"""Video translation speed: frames per second of `ugatit translate --input clip.mp4`, whole frames and
with --face-crop --paste-back, per batch size.

    python benchmarks/bench_video.py [--frames 24] [--width 640] [--height 360] [--size 256] [--ch 64]
        [--n-res 4] [--batch-sizes 1,4] [--device cpu] [--threads N]

Writes an H.264 + AAC clip of a camera panning across scikit-image's astronaut photo (a face in every
frame; the scikit-image wheel ships the photo) at --width x --height, 25 frames/s, then translates it with
a light model of the given size (randomly initialised: speed does not depend on the weights) through
`ugatit.translate.video.translate_video`, the code the command runs. Each row is one run after one
warm-up of the model; frames/s counts decoding, face detection (first pass), resizing, translation,
paste-back and encoding. A "pass-through" row runs --face-crop on a clip without a face (a smooth
colour field): decoding, face detection and encoding alone, the ceiling of the face-crop pipeline. The
load average before and after is printed: on a shared machine, say so with the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ugatit.nn.model import UGATIT
from ugatit.translate.video import translate_video


def write_clip(path: Path, frames: int, width: int, height: int, face: bool = True) -> Path:
    import av
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    if not face:  # a smooth colour field: nothing a face detector could take for a face
        coarse = np.random.default_rng(0).uniform(0, 255, (4, 6, 3)).astype(np.uint8)
        photo = Image.fromarray(coarse).resize((600, 400), Image.Resampling.BICUBIC)
    scale = 1.6 * max(width, height) / max(photo.size)
    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BICUBIC)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=44100, layout="stereo")
        step = max(1, (photo.width - width) // max(1, frames))
        for i in range(frames):
            frame = photo.crop((step * i, 0, step * i + width, height))
            out.mux(video.encode(av.VideoFrame.from_image(frame)))
        out.mux(video.encode(None))
        silence = np.zeros((2, 1024), np.float32)
        for k in range(round(44100 * frames / 25 / 1024)):
            chunk = av.AudioFrame.from_ndarray(silence, format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts = 44100, k * 1024
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--size", type=int, default=256, help="the model's square size")
    parser.add_argument("--ch", type=int, default=64)
    parser.add_argument("--n-res", type=int, default=4)
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from ugatit.config import ModelConfig

    model = UGATIT(ModelConfig(img_size=args.size, ch=args.ch, n_res=args.n_res, light=True), discriminators=False)
    model = model.to(device).eval()
    with torch.no_grad():  # warm-up: first-call allocations and kernel choices
        model.translate(torch.zeros(1, 3, args.size, args.size, device=device), "a2b")
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    print(
        f"clip: {args.frames} frames of {args.width}x{args.height} at 25 frames/s; model: light, {args.size} px, "
        f"ch {args.ch}, n_res {args.n_res}"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print("| mode | batch | frames/s | s/frame |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        clip = write_clip(temp / "pan.mp4", args.frames, args.width, args.height)
        wall = write_clip(temp / "wall.mp4", args.frames, args.width, args.height, face=False)
        rows = [("whole frames", clip, False, b) for b in map(int, args.batch_sizes.split(","))]
        rows += [("face crop + paste-back", clip, True, b) for b in map(int, args.batch_sizes.split(","))]
        rows += [("pass-through (no face)", wall, True, 1)]
        for mode, path, face, batch in rows:
            start = time.perf_counter()
            result = translate_video(model, path, temp / "out", batch_size=batch, face_crop=face)
            seconds = time.perf_counter() - start  # both passes, as the command takes
            assert result.frames == args.frames, result
            print(f"| {mode} | {batch} | {result.frames / seconds:.2f} | {seconds / result.frames:.3f} |", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
