"""Measure translations: KID x 100 (paper and/or subset protocol), FID, and the authors' mean KID.

--real holds real images of the target domain, --fake the translations into it. KID and FID are
computed on 2048-d pool3 features of the FID Inception-v3 (the TF 2015-12-05 graph, pytorch-fid's
weights file). Protocols: "paper" = the U-GAT-IT authors' code (blocks of 10 in sorted file order,
mean and standard error), "subsets" = torch-fidelity/torchmetrics (random subsets, mean and std).
With --source (the real source-domain images that were translated) the authors' "mean KID" is
added: (0.98 KID(source, fake) + 0.02 KID(target, fake)) / 2. Every result states n, protocol and
settings, and the Inception weights' sha256. See docs/metrics.md.

With --checkpoint and --data instead, the model translates the dataset's test split (testA -> B,
testB -> A) and the translations are measured against the real images of the other domain. Where the
dataset has ground truth (a ground_truth.json beside testA/testB, as `ugatit make-dataset` writes),
the L1 / PSNR of every translation against its ground truth, the cycle error and the identity baseline
are reported too; KID is then skipped with a note if no Inception weights can be found.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ..domains import DIRECTIONS
from ..errors import UserError
from ._types import device_argument, positive_int

if TYPE_CHECKING:
    from ..metrics.kid import KIDSettings

#: How library errors' terms read on this command line (see `ugatit.errors.reword`).
FLAGS = {
    "device": "--device",
    "weights": "--inception-weights",
    "feature_extractor": "--feature-extractor",
    "batch_size": "--batch-size",
    "block_size": "--block-size",
    "subsets": "--subsets",
    "subset_size": "--subset-size",
    "protocol": "--protocol",
    "direction": "--direction",
}

HELP = "KID x100 (paper / subset protocol), FID and mean KID between image folders"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--real", metavar="DIR", help="real images of the target domain")
    parser.add_argument("--fake", metavar="DIR", help="translated images (into the target domain)")
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="instead of --real/--fake: a model (run directory, "
        "checkpoint, export, official .pt, PaddleGAN .pdparams or TF checkpoint) to translate the "
        "test split of --data with",
    )
    parser.add_argument("--data", metavar="ROOT", help="with --checkpoint: a dataset root with testA and testB")
    parser.add_argument(
        "--direction",
        choices=[*DIRECTIONS, "both"],
        default="both",
        help="with --checkpoint: which translations to measure",
    )
    parser.add_argument(
        "--save-translations",
        metavar="DIR",
        help="with --checkpoint: also write the translations as PNG under DIR/<direction>/",
    )
    parser.add_argument(
        "--source",
        metavar="DIR",
        help="real source-domain images that were translated; adds the authors' mean KID",
    )
    parser.add_argument(
        "--protocol",
        choices=["paper", "subsets", "both"],
        default="both",
        help="KID protocol: paper = blocks of 10 in file order (U-GAT-IT's code), subsets = random subsets",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the full report as JSON to OUT")
    parser.add_argument(
        "--inception-weights",
        metavar="PATH",
        help="FID Inception weights (pt_inception-2015-12-05-6726825d.pth); default: "
        "$UGATIT_INCEPTION_WEIGHTS, then the torch hub cache, then download",
    )
    parser.add_argument("--batch-size", type=positive_int, default=50, help="images per forward pass")
    device_argument(parser)
    parser.add_argument("--block-size", type=int, default=10, help="paper protocol: largest block")
    parser.add_argument("--subsets", type=positive_int, default=100, help="subsets protocol: number of subsets")
    parser.add_argument(
        "--subset-size", type=positive_int, default=1000, help="subsets protocol: subset size (capped at the set sizes)"
    )
    parser.add_argument("--seed", type=int, default=0, help="subsets protocol: random seed")
    parser.add_argument(
        "--resize",
        choices=["tf1", "pil"],
        default="tf1",
        help="how images reach 299x299: tf1 = TF1 float bilinear (TF graph, torch-fidelity); "
        "pil = 8-bit PIL bilinear (the authors' scipy.misc.imresize)",
    )
    parser.add_argument(
        "--feature-extractor",
        metavar="MODULE:CALLABLE",
        help="advanced: use another feature extractor, any importable factory returning an nn.Module that "
        "maps (N,3,H,W) floats in [0,1] to (N,d) features (optional attributes: input_size, name)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..metrics.features import kid_report
    from ..utils.device import resolve_device
    from ..utils.files import write_json

    device = resolve_device(args.device)
    if args.checkpoint or args.data:
        return _run_checkpoint(args, device)
    if not (args.real and args.fake):
        raise UserError("give --real DIR and --fake DIR, or --checkpoint PATH and --data ROOT")
    kid = _kid_settings(args)
    _check_folders(args, kid)  # before loading (or downloading) weights
    extractor, extractor_name = _extractor(args, device)
    report = kid_report(
        args.real,
        args.fake,
        extractor,
        source=args.source,
        kid=kid,
        batch_size=args.batch_size,
        device=device,
        resize=args.resize,
        extractor_name=extractor_name,
        progress=_progress_printer(),
    )
    report = {"command": "ugatit eval", "device": str(device), **report}
    print(format_report(report))
    if args.json:
        print(f"wrote {write_json(report, Path(args.json))}")
    return 0


def _kid_settings(args: argparse.Namespace) -> KIDSettings:
    """The KID flags, as the one settings object both forms of the command measure with."""
    from ..metrics.kid import PROTOCOLS, KIDSettings

    return KIDSettings(
        protocols=PROTOCOLS if args.protocol == "both" else (args.protocol,),
        block_size=args.block_size,
        subsets=args.subsets,
        subset_size=args.subset_size,
        seed=args.seed,
    )


def _check_folders(args: argparse.Namespace, kid: KIDSettings) -> None:
    """Each folder exists and holds images, in numbers the protocols can measure."""
    from pathlib import Path

    from ..data.images import find_images
    from ..metrics.kid import check_set_sizes

    counts = {}
    for flag, folder in (("--real", args.real), ("--fake", args.fake), ("--source", args.source)):
        if folder is None:
            continue
        if not Path(folder).is_dir():
            raise UserError(f"{flag} folder not found: {folder}")
        try:
            counts[flag] = len(find_images(folder))
        except UserError as exc:
            raise UserError(f"{flag}: {exc}") from None
    for compared in ("--real", "--source"):  # the fakes are measured against each
        if compared in counts:
            try:
                check_set_sizes(counts[compared], counts["--fake"], kid.protocols, kid.block_size)
            except UserError as exc:
                raise UserError(f"{compared} and --fake: {exc}") from None


def _extractor(args: argparse.Namespace, device: Any) -> tuple[Any, Any]:
    from ..metrics.features import custom_extractor
    from ..metrics.inception import load_fid_inception

    if args.feature_extractor:
        if args.inception_weights:
            raise UserError("--inception-weights and --feature-extractor exclude each other")
        return custom_extractor(args.feature_extractor).to(device), args.feature_extractor
    extractor, _ = load_fid_inception(args.inception_weights, device=device)
    return extractor, None


def _run_checkpoint(args: argparse.Namespace, device: Any) -> int:
    """Translate the test split with a model, then measure (KID/FID and, if paired, ground truth)."""
    from pathlib import Path

    from ..domains import directions_for
    from ..evaluation import TestSplit, evaluate_model
    from ..utils.files import write_json
    from ..weights import load_model

    if not (args.checkpoint and args.data):
        raise UserError("--checkpoint and --data go together (and replace --real/--fake)")
    if args.real or args.fake or args.source:
        raise UserError("--real/--fake/--source cannot be combined with --checkpoint")
    split = TestSplit(args.data)
    model, config = load_model(args.checkpoint, device=device)
    notes = []
    try:
        extractor, extractor_name = _extractor(args, device)
    except UserError as exc:
        if not split.paired:
            raise
        from ..errors import reword

        extractor, extractor_name = None, None
        notes.append(f"KID/FID skipped: {reword(str(exc), FLAGS)}")
    names = {d: [str(p.relative_to(split.root / f"test{d}")) for p in split.files[d]] for d in ("A", "B")}
    report = evaluate_model(
        model,
        split.images("A"),
        split.images("B"),
        directions=directions_for(args.direction),
        extractor=extractor,
        paired=split.paired,
        kid=_kid_settings(args),
        batch_size=min(args.batch_size, 16),
        feature_batch_size=args.batch_size,
        device=device,
        resize=args.resize,
        extractor_name=extractor_name,
        save_translations=Path(args.save_translations) if args.save_translations else None,
        names=names,
        objects=split.objects,
    )
    report = {
        "command": "ugatit eval",
        "checkpoint": str(args.checkpoint),
        "data": str(split.root),
        "model": config.model.__dict__,
        "device": str(device),
        "notes": notes,
        **report,
    }
    print(format_checkpoint_report(report))
    if args.json:
        print(f"wrote {write_json(report, Path(args.json))}")
    return 0


def format_checkpoint_report(report: dict[str, Any]) -> str:
    """The table `ugatit eval --checkpoint` prints: KID/FID per direction, then ground truth."""
    lines = [f"model {report['checkpoint']} on the test split of {report['data']}"]
    notes = [f"note: {note}" for note in report.get("notes", [])]
    directions = report["directions"]
    if any("metrics" in entry for entry in directions.values()):
        for direction, entry in directions.items():
            lines += ["", _translated(direction, entry)]
            if "metrics" in entry:
                lines.append(format_report(entry | {"sets": {}}))
    else:  # KID/FID skipped: what was translated, and why nothing is measured on it, in one block
        lines += ["", *(_translated(direction, entry, measured=False) for direction, entry in directions.items())]
        lines += notes
        notes = []
    if "ground_truth" in report:
        lines += ["", "ground truth ([0,1] scale; identity = the input itself as the answer)", ""]
        header = (
            f"{'direction':<9} {'n':>5} {'L1':>8} {'PSNR dB':>8} "
            f"{'identity L1':>12} {'identity PSNR':>14} {'cycle L1':>9}"
        )
        lines += [header, "-" * len(header)]
        for direction, row in report["ground_truth"].items():
            lines.append(
                f"{direction:<9} {row['count']:>5} {row['l1']:>8.4f} {row['psnr']:>8.2f} "
                f"{row['identity_l1']:>12.4f} {row['identity_psnr']:>14.2f} {row['cycle_l1']:>9.4f}"
            )
        objects = {d: row for d, row in report["ground_truth"].items() if "texture_right" in row}
        if objects:
            from ..demo.report import headline_sentence

            lines += ["", "inside the shapes (identity = the input itself as the answer)"]
            lines += [headline_sentence(direction, row) for direction, row in objects.items()]
        morphs = {d: row for d, row in report["ground_truth"].items() if "shape_change" in row}
        if morphs:
            from ..demo import morph

            lines += ["", "the shapes' outlines (identity = the input itself as the answer)"]
            lines += [morph.headline_sentence(direction, row) for direction, row in morphs.items()]
    return "\n".join(lines + notes)


def _translated(direction: str, entry: dict[str, Any], measured: bool = True) -> str:
    against = f", vs real {entry['target']}" if measured else ""
    return f"{direction}: {entry['source']} ({entry['n']} images) translated{against}"


def _progress_printer():
    # Only draw a live counter on a terminal; logs and test captures get nothing per batch.
    if not sys.stderr.isatty():
        return None

    def show(role: str, done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\rfeatures {role}: {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _settings_text(entry: dict[str, Any]) -> str:
    if entry.get("protocol") == "paper":
        return (
            f"paper: blocks of <={entry['block_size']} in file order, {entry['n_blocks']} blocks "
            f"(real {entry['real_block_sizes']}, fake {entry['fake_block_sizes']})"
        )
    if entry.get("protocol") == "subsets":
        text = f"subsets: {entry['subsets']} x {entry['subset_size']}, seed {entry['seed']}"
        return f"{text} ({entry['note']})" if entry.get("note") else text
    return str(entry.get("protocol", ""))


def format_report(report: dict[str, Any]) -> str:
    """The human-readable table ``ugatit eval`` prints."""
    fx = report["feature_extractor"]
    weights = (
        f"weights {fx['weights_file']} sha256 {fx['weights_sha256'][:12]}"
        if fx.get("weights_sha256")
        else "weights n/a (custom extractor)"
    )
    lines = []
    for role, info in report["sets"].items():
        lines.append(f"{role:<6} {info['path']}  ({info['n']} images)")
    lines.append(f"features: {fx['name']} | {weights} | resize {fx['resize']}")
    lines.append("")
    header = f"{'metric':<24} {'value':>9} {'+-':>9} {'':<4} {'n real/fake':>11}  settings"
    lines.append(header)
    lines.append("-" * len(header))
    for entry in report["metrics"].values():
        if entry["metric"] == "FID":
            value, spread, kind = _fmt(entry["value"]), "", ""
        else:
            value = _fmt(entry["value_x100"])
            kind = "sem" if "sem_x100" in entry else "std"
            spread = _fmt(entry.get(f"{kind}_x100"))
        # For KID(source, fake) n_real counts the source images.
        counts = f"{entry['n_real']}/{entry['n_fake']}"
        lines.append(f"{entry['metric']:<24} {value:>9} {spread:>9} {kind:<4} {counts:>11}  {_settings_text(entry)}")
    return "\n".join(lines)
