"""Measure translations: KID x 100 (paper and/or subset protocol), FID, and the authors' mean KID.

--real holds real images of the target domain, --fake the translations into it. KID and FID are
computed on 2048-d pool3 features of the FID Inception-v3 (the TF 2015-12-05 graph, pytorch-fid's
weights file). Protocols: "paper" = the U-GAT-IT authors' code (blocks of 10 in sorted file order,
mean and standard error), "subsets" = torch-fidelity/torchmetrics (random subsets, mean and std).
With --source (the real source-domain images that were translated) the authors' "mean KID" is
added: (0.98 KID(source, fake) + 0.02 KID(target, fake)) / 2. Every result states n, protocol and
settings, and the Inception weights' sha256. See docs/metrics.md.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import UserError

HELP = "KID x100 (paper / subset protocol), FID and mean KID between image folders"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--real", required=True, metavar="DIR", help="real images of the target domain")
    parser.add_argument("--fake", required=True, metavar="DIR", help="translated images (into the target domain)")
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
    parser.add_argument("--batch-size", type=_positive, default=50, help="images per forward pass")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where to run Inception")
    parser.add_argument("--block-size", type=int, default=10, help="paper protocol: largest block")
    parser.add_argument("--subsets", type=_positive, default=100, help="subsets protocol: number of subsets")
    parser.add_argument(
        "--subset-size", type=_positive, default=1000, help="subsets protocol: subset size (capped at the set sizes)"
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
    import json
    from pathlib import Path

    import torch

    from ..metrics.features import evaluate_folders
    from ..metrics.inception import load_fid_inception

    device = _pick_device(args.device, torch)
    if args.feature_extractor:
        if args.inception_weights:
            raise UserError("--inception-weights and --feature-extractor exclude each other")
        extractor = _custom_extractor(args.feature_extractor, torch).to(device)
        extractor_name = args.feature_extractor
    else:
        extractor, _ = load_fid_inception(args.inception_weights, device=device)
        extractor_name = None
    protocols = ("paper", "subsets") if args.protocol == "both" else (args.protocol,)
    report = evaluate_folders(
        args.real,
        args.fake,
        extractor,
        source=args.source,
        protocols=protocols,
        block_size=args.block_size,
        subsets=args.subsets,
        subset_size=args.subset_size,
        seed=args.seed,
        batch_size=args.batch_size,
        device=device,
        resize=args.resize,
        extractor_name=extractor_name,
        progress=_progress_printer(),
    )
    report = {"command": "ugatit eval", "device": str(device), **report}
    print(format_report(report))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
        print(f"wrote {out}")
    return 0


def _pick_device(choice: str, torch: Any) -> Any:
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def _custom_extractor(spec: str, torch: Any) -> Any:
    import importlib

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"--feature-extractor must look like module:callable, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"--feature-extractor: cannot import {module_name!r}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserError(f"--feature-extractor: {module_name} has no callable {attr!r}")
    extractor = factory()
    if not isinstance(extractor, torch.nn.Module):
        raise UserError(f"--feature-extractor: {spec}() returned {type(extractor).__name__}, not an nn.Module")
    return extractor


def _progress_printer():
    # Only draw a live counter on a terminal; logs and test captures get nothing per batch.
    if not sys.stderr.isatty():
        return None

    def show(role: str, done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\rfeatures {role}: {done}/{total}", end=end, file=sys.stderr, flush=True)

    return show


def _json_default(value: Any) -> Any:
    return str(value)


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
        lines.append(
            f"{entry['metric']:<24} {value:>9} {spread:>9} {kind:<4} {counts:>11}  {_settings_text(entry)}"
        )
    return "\n".join(lines)
