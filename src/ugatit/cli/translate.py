"""Translate an image, or every image under a folder, with a trained model.

Sizes: each image is resized to the model's square size (bilinear), translated, and resized back to
its own width and height (bicubic), so outputs match their inputs whatever the size and aspect ratio.
Light models run at their trained size unless --size says otherwise; full models run only at their
trained size. Output folder: OUT/NAME.png for input NAME.ext (sub-folders kept; always PNG),
OUT/NAME_attention.png with --attention (the generator's attention heatmap over the input; with a
checkpoint that holds the discriminators, a training checkpoint or run folder, also
OUT/NAME_attention_global_D.png and OUT/NAME_attention_local_D.png: the target domain's global and local
discriminators' attention over the translation, the paper's Figure 2 (c)-(d)),
OUT/index.html showing input, output and attention side by side, and the input thumbnails it shows in
OUT/.thumbnails/. Files that cannot be read are reported and skipped. The checkpoint may be a run
folder (its latest checkpoint), a training checkpoint (.pt), an export (.safetensors), an official
U-GAT-IT checkpoint (.pt), PaddleGAN weights (.pdparams) or the authors' TensorFlow checkpoint (its
folder or prefix); see docs/weights.md. A light model from PaddleGAN or TF runs at 256 px unless --size
says otherwise (those files do not record the size).

--face-crop (needs the faces extra, OpenCV): each image is cut to a square around its largest face
(OpenCV's bundled Haar cascade; the square is twice the face box, so hair and chin are in), and that square
is translated; the index shows the face box and the square on each input. Images without a face are
translated whole, and named on stderr.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..domains import DIRECTIONS
from ..errors import UserError
from ._types import checkpoint_argument, device_argument, positive_int

#: How library errors' terms read on this command line (see `ugatit.cli.reword`).
FLAGS = {"device": "--device", "size": "--size", "direction": "--direction", "batch_size": "--batch-size"}

HELP = "translate images or folders with a trained model (any size; optional attention maps)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    checkpoint_argument(parser)
    parser.add_argument(
        "--input", required=True, metavar="FILE_OR_DIR", help="an image, or a folder searched recursively"
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="output folder (created; must not be the input folder or inside it)",
    )
    parser.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default="a2b",
        help="a2b translates domain A images with genA2B, b2a domain B images with genB2A",
    )
    parser.add_argument(
        "--attention",
        action="store_true",
        help="also write NAME_attention.png: the generator's attention heatmap, upsampled and blended over the "
        "input, and (where the checkpoint has the discriminators) the global and local discriminators' over "
        "the translation",
    )
    parser.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="images per forward pass")
    device_argument(parser)
    parser.add_argument(
        "--size",
        type=positive_int,
        metavar="N",
        help="light models only: run at N x N px (a multiple of 4, at least 32) instead of the trained size",
    )
    parser.add_argument(
        "--face-crop",
        action="store_true",
        help="translate a square around each image's largest face (as selfie2anime data is framed); "
        "whole images where no face is found",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    input_path, output_dir = Path(args.input), Path(args.output)
    # Mistyped paths fail before torch is imported and long before a large model is loaded.
    from ..utils.files import path_exists

    if not path_exists(args.checkpoint):
        raise UserError(f"checkpoint not found: {args.checkpoint}")
    if not input_path.exists():
        raise UserError(f"input not found: {input_path}")

    from ..translate import INDEX_NAME, check_output_dir, translate_folder
    from ..utils.console import notify
    from ..utils.device import resolve_device
    from ..weights import load_model

    check_output_dir(output_dir, input_path)
    if args.face_crop:
        from ..translate.faces import check_face_detector

        check_face_detector()  # before the model: a missing OpenCV should not cost a long load
    device = resolve_device(args.device)
    model, _ = load_model(args.checkpoint, device=device, discriminators=args.attention)

    def report_skip(path: Path, reason: str) -> None:
        notify(f"skipped {path}: {reason}")

    # A folder's unreadable files are named as they are met; a single file's reason is the error itself.
    results = translate_folder(
        model,
        input_path,
        output_dir,
        args.direction,
        attention=args.attention,
        batch_size=args.batch_size,
        size=args.size,
        progress=not args.no_progress,
        on_skip=report_skip if input_path.is_dir() else None,
        notes=[f"Checkpoint: {args.checkpoint}."],
        face_crop=args.face_crop,
    )
    done = [r for r in results if r.ok]
    for r in done:
        if args.face_crop and r.face is None:
            notify(f"no face found in {r.source}: translated the whole image")
    skipped = [r for r in results if not r.ok]
    if not done:
        if not input_path.is_dir():
            raise UserError(f"cannot read image {skipped[0].source}: {skipped[0].error}")
        first = skipped[0]
        raise UserError(
            f"nothing translated: none of the {len(skipped)} images in {input_path} could be read "
            f"(the first, {first.source}: {first.error})"
        )
    line = f"translated {len(done)} image{'s' if len(done) != 1 else ''} ({args.direction}) into {output_dir}"
    if skipped:
        files = f"{len(skipped)} unreadable file{'s' if len(skipped) != 1 else ''}"
        line += f"; skipped {files} (listed above and in the index)"
    print(line)
    print(f"index: {output_dir / INDEX_NAME}")
    return 0
