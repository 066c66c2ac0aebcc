"""Convert weights of any kind into our export: both generators in one safetensors file, with the config
that rebuilds them (in the file and as OUT.json beside it).

SRC is anything `ugatit translate --checkpoint` reads: a run folder, a training checkpoint, an export, an
official PyTorch checkpoint, PaddleGAN weights (.pdparams) or the authors' TensorFlow checkpoint (folder,
prefix or .index). The foreign format is read and checked once; `translate`, `eval` and `export` then load
OUT directly. Weights stay fp32 (the conversion is exact) unless --fp16 halves the file (outputs then
move by ~1e-3). The discriminators are not exported. See docs/weights.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError
from ._types import require_checkpoint

HELP = "convert PaddleGAN, TensorFlow, official or our weights into our safetensors export"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="weights of any kind (see above)")
    parser.add_argument("out", metavar="OUT", help="the export to write (.safetensors is added if missing)")
    parser.add_argument("--fp16", action="store_true", help="store the weights in fp16 (half the size, ~1e-3 off)")


def run(args: argparse.Namespace) -> int:
    from ..utils.files import reported_write

    require_checkpoint(args.src)
    out = Path(args.out)
    out = out if out.suffix == ".safetensors" else out.with_name(out.name + ".safetensors")
    if out.exists() and out.resolve() == Path(args.src).resolve():
        raise UserError(f"{out} is SRC itself: choose another OUT")

    import torch

    from ..weights.export import export_generators
    from ..weights.loading import build_model, read_weights

    weights = read_weights(args.src)
    model = build_model(weights)
    with reported_write(out):
        written = export_generators(model, weights.config, out, dtype=torch.float16 if args.fp16 else torch.float32)
    m = model.config
    kind = "light" if m.light else f"full at {m.img_size} px"
    print(f"read {weights.kind} {args.src}: {kind}, ch={m.ch}, n_res={m.n_res}, {m.variant} networks")
    print(f"wrote {written} and {written.with_suffix('.json')}")
    return 0
