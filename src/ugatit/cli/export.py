"""Export a generator to ONNX or TorchScript, to run without this package (onnxruntime, TensorRT, libtorch).

SRC is anything `ugatit translate --checkpoint` reads. Each file takes `image` (B, 3, H, W) float32 in
[-1, 1] (RGB, x = v / 127.5 - 1) and returns `translation` (same shape, [-1, 1]), `cam_logit` (B, 2) and
`heatmap` (B, 1, H/4, W/4); a model without CAM in its generators (an ablation, see docs/ablations.md)
returns `translation` alone. The batch size is free; a light model also takes any H and W that are
multiples of 4 (at least 32), while a full model only runs at its trained size: its MLP reads the whole
attention map. With --direction both (the default) OUT_a2b and OUT_b2a are written. --fp16 stores
convolution and linear weights in fp16 (about half the file, outputs ~1e-3 off) with inputs and outputs
in float32. ONNX needs the export extra: pip install "ugatit[export]". README.md shows the ONNX file run
with onnxruntime, numpy and Pillow only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._types import require_checkpoint

HELP = "export a generator to ONNX or TorchScript for deployment"

#: How library errors' terms read on this command line (see `ugatit.errors.reword`).
FLAGS = {"format": "--format"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "src", metavar="SRC", help="weights of any kind (run folder, checkpoint, export, .pdparams, TF)"
    )
    parser.add_argument("--format", choices=["onnx", "torchscript"], required=True, help="file format")
    parser.add_argument("--direction", choices=["a2b", "b2a", "both"], default="both", help="which generator(s)")
    parser.add_argument("--fp16", action="store_true", help="fp16 weights for convolutions and linear layers")
    parser.add_argument(
        "--output",
        metavar="PATH",
        help="file to write (with both directions: PATH_a2b, PATH_b2a; default: the name of SRC in the current folder)",
    )


def run(args: argparse.Namespace) -> int:
    require_checkpoint(args.src)

    from ..domains import directions_for
    from ..weights.deploy import deployment_paths, export_generator
    from ..weights.loading import build_model, read_weights

    weights = read_weights(args.src)
    model = build_model(weights)
    directions = list(directions_for(args.direction))
    output = Path(args.output) if args.output else Path(Path(args.src).resolve().name.split(".")[0] or "ugatit")
    for direction, path in deployment_paths(output, directions, args.format).items():
        export_generator(model, direction, args.format, path, fp16=args.fp16)
        print(f"wrote {path}")
    m = model.config
    if m.light:
        print("inputs: (B, 3, H, W) float32 in [-1, 1], any batch, H and W multiples of 4 (at least 32)")
    else:
        print(
            f"inputs: (B, 3, {m.img_size}, {m.img_size}) float32 in [-1, 1], any batch: a full model runs only "
            "at its trained size"
        )
    return 0
