"""Share a trained model on the Hugging Face Hub (needs the hub extra: pip install "ugatit[hub]").

SRC is anything `ugatit translate --checkpoint` reads; usually a run folder, whose log and sample grids
then go into the card. NAMESPACE/NAME is the model repository (created if missing, as a private one
with --private). What is uploaded, in one commit: the generators' export (ugatit_generators.safetensors
and its .json config), README.md (the model card: what it translates, config and variant, iterations,
the run's metrics, sample grids, usage with ugatit and with plain ONNX/TorchScript, the licence),
metrics.json, samples/*.png and, with --formats, deploy/ugatit_{a2b,b2a}.{onnx,pt}. --dry-run DIR writes
exactly that folder and uploads nothing. The upload uses the hub client's login (hf auth login, or
HF_TOKEN). Afterwards every command reads the model as --checkpoint hf://NAMESPACE/NAME. See
docs/sharing.md.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ..errors import UserError
from ._types import require_checkpoint

HELP = "share a trained model on the Hugging Face Hub, with a model card (needs the hub extra)"

#: How library errors' terms read on this command line (see `ugatit.errors.reword`).
FLAGS = {"formats": "--formats", "license": "--license"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "src", metavar="RUN_OR_EXPORT", help="a run folder, an export or any checkpoint translate reads"
    )
    parser.add_argument("repo_id", metavar="NAMESPACE/NAME", help="the model repository on the Hub")
    parser.add_argument(
        "--dry-run",
        metavar="DIR",
        help="write the folder that would be uploaded into DIR (new or empty), upload nothing",
    )
    parser.add_argument("--domain-a", default="domain A", metavar="TEXT", help="what domain A is, for the card")
    parser.add_argument("--domain-b", default="domain B", metavar="TEXT", help="what domain B is, for the card")
    parser.add_argument(
        "--license",
        default="other",
        metavar="ID",
        help="the card's licence: a Hub licence identifier (mit, apache-2.0, cc-by-nc-4.0, ...)",
    )
    parser.add_argument(
        "--formats",
        default="",
        metavar="LIST",
        help="also upload the generators as onnx and/or torchscript (comma-separated; onnx needs the export extra)",
    )
    parser.add_argument(
        "--samples", metavar="DIR", help="images for the card's sample grid, when SRC has no run with samples"
    )
    parser.add_argument("--private", action="store_true", help="create the repository as a private one")
    parser.add_argument("--revision", metavar="BRANCH", help="push to this branch (created if missing)")
    parser.add_argument("--message", default="Upload U-GAT-IT model with ugatit push", help="the commit message")


def run(args: argparse.Namespace) -> int:
    from ..sharing import check_repo_id

    require_checkpoint(args.src)
    check_repo_id(args.repo_id)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    for fmt in formats:
        if fmt not in ("onnx", "torchscript"):
            raise UserError(f"--formats: {fmt!r} is not onnx or torchscript")
    from ..weights.hub import _hub

    _hub()  # a missing huggingface_hub is one line before the model is read
    if args.dry_run:
        folder = Path(args.dry_run)
        share = _prepare(args, folder, formats)
        _describe(folder, share)
        print(f"dry run: nothing uploaded; `ugatit push {args.src} {args.repo_id}` would upload {folder}")
        return 0
    from ..sharing import push_folder

    with tempfile.TemporaryDirectory(prefix="ugatit-push-") as temp:
        folder = Path(temp) / "upload"
        share = _prepare(args, folder, formats)
        _describe(folder, share)
        url = push_folder(folder, args.repo_id, private=args.private, revision=args.revision, message=args.message)
    print(f"pushed to {url}")
    print(f"use it: ugatit translate --checkpoint hf://{args.repo_id} --input photo.jpg --output out/")
    return 0


def _prepare(args: argparse.Namespace, folder: Path, formats: list[str]):
    from ..sharing import prepare_folder
    from ..utils.console import notify

    if args.license == "other":
        notify("no --license given: the card says `license: other`")
    return prepare_folder(
        args.src,
        args.repo_id,
        folder,
        domain_a=args.domain_a,
        domain_b=args.domain_b,
        license=args.license,
        formats=formats,
        samples=args.samples,
        on_message=notify,
    )


def _describe(folder: Path, share) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in files)
    print(f"{folder}: {len(files)} files, {total / 1e6:.1f} MB")
    for path in files:
        print(f"  {path.relative_to(folder).as_posix()}  ({path.stat().st_size / 1e3:.1f} kB)")
    metrics = f"{len(share.evaluations)} evaluations" if share.evaluations else "no evaluations"
    steps = f"{share.steps} iterations" if share.steps is not None else "iterations not recorded"
    print(f"card: {share.kind}, {steps}, {metrics}, {len(share.samples)} sample grids")
