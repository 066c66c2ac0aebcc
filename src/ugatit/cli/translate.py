"""Translate an image, every image under a folder, or a video, with a trained model.

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
translated whole, and named on stderr. The output then has the square's size; --paste-back blends the
translated square back into the whole photo (a feathered band just inside the square's edge), so the
output has the photo's size and, outside the square, the photo's own pixels.

Video (needs the video extra, PyAV): an input file named .mp4, .mov, .mkv, .webm, .avi, ... is translated
frame by frame into OUT/NAME with the same container: same frame count, frame rate and duration, the
audio copied untouched. Frames go through the model --batch-size at a time. With --face-crop
--paste-back the face is tracked and its box smoothed across frames, and frames without a face pass
through untranslated. The flicker (mean change between consecutive frames, output against input) is
printed at the end. A video that cannot be decoded to its end keeps the frames translated so far, and
the error says where it stopped. See docs/video.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..domains import DIRECTIONS
from ..errors import UserError
from ._types import checkpoint_argument, device_argument, positive_int, require_checkpoint

if TYPE_CHECKING:
    from ..translate import TranslateOptions

#: How library errors' terms read on this command line (see `ugatit.errors.reword`).
FLAGS = {
    "device": "--device",
    "size": "--size",
    "direction": "--direction",
    "batch_size": "--batch-size",
    "face_crop": "--face-crop",
    "paste_back": "--paste-back",
}

HELP = "translate images, folders or videos with a trained model (any size; optional attention maps)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    checkpoint_argument(parser)
    parser.add_argument(
        "--input",
        required=True,
        metavar="FILE_OR_DIR",
        help="an image, a folder searched recursively for images, or a video file",
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
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, metavar="N", help="images (or video frames) per forward pass"
    )
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
    parser.add_argument(
        "--paste-back",
        action="store_true",
        help="with --face-crop: blend the translated face back into the whole photo or frame (the output keeps "
        "the input's size; outside the face square it is the input)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    input_path, output_dir = Path(args.input), Path(args.output)
    # Mistyped paths fail before torch is imported and long before a large model is loaded.
    require_checkpoint(args.checkpoint)
    if not input_path.exists():
        raise UserError(f"input not found: {input_path}")

    from ..translate import INDEX_NAME, TranslateOptions, check_output_dir, translate_folder
    from ..translate.video import is_video
    from ..utils.console import notify
    from ..utils.device import resolve_device
    from ..weights import load_model

    options = TranslateOptions(
        attention=args.attention,
        batch_size=args.batch_size,
        size=args.size,
        face_crop=args.face_crop,
        paste_back=args.paste_back,
    )
    if input_path.is_file() and is_video(input_path):
        return _run_video(args, options, input_path, output_dir)
    check_output_dir(output_dir, input_path)
    if options.face_crop:
        from ..translate.faces import check_face_detector

        check_face_detector()  # before the model: a missing OpenCV should not cost a long load
    device = resolve_device(args.device)
    model, _ = load_model(args.checkpoint, device=device, discriminators=options.attention)

    def report_skip(path: Path, reason: str) -> None:
        notify(f"skipped {path}: {reason}")

    # A folder's unreadable files are named as they are met; a single file's reason is the error itself.
    results = translate_folder(
        model,
        input_path,
        output_dir,
        args.direction,
        options,
        progress=not args.no_progress,
        on_skip=report_skip if input_path.is_dir() else None,
        notes=[f"Checkpoint: {args.checkpoint}."],
    )
    done = [r for r in results if r.ok]
    for r in done:
        if options.face_crop and r.face is None:
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


def _run_video(args: argparse.Namespace, options: TranslateOptions, input_path: Path, output_dir: Path) -> int:
    from ..translate import check_output_dir
    from ..translate.video import check_video_support, translate_video
    from ..utils.device import resolve_device
    from ..weights import load_model

    if options.attention:
        raise UserError("--attention writes images: it is not available for a video input")
    if options.face_crop and not options.paste_back:
        raise UserError(
            "on a video, --face-crop needs --paste-back (every frame of a video has one size, so the face square "
            "goes back into its frame)"
        )
    check_video_support()  # before the model: a missing PyAV should not cost a long load
    check_output_dir(output_dir)
    if options.face_crop:
        from ..translate.faces import check_face_detector

        check_face_detector()
    device = resolve_device(args.device)
    model, _ = load_model(args.checkpoint, device=device)
    result = translate_video(
        model,
        input_path,
        output_dir,
        args.direction,
        batch_size=options.batch_size,
        size=options.size,
        face_crop=options.face_crop,
        progress=not args.no_progress,
    )
    w, h = result.size
    audio = f", audio copied ({', '.join(result.audio)})" if result.audio else ", no audio"
    faces = ""
    if result.faces is not None:
        faces = f", a face in {result.faces}" if result.faces else ", no face in any frame: all passed through"
    print(
        f"translated {result.frames} frame{'s' if result.frames != 1 else ''} ({args.direction}, {w}x{h}, "
        f"{float(result.rate):.3g} frames/s{audio}{faces}) into {result.output} at {result.fps:.2f} frames/s "
        f"on {device}"
    )
    print(result.flicker_line())
    if result.stopped:
        raise UserError(
            f"{input_path}: {result.stopped}; the {result.frames} frame{'s' if result.frames != 1 else ''} read "
            f"{'are' if result.frames != 1 else 'is'} translated in {result.output}"
        )
    return 0
