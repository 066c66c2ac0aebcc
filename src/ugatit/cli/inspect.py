"""Say what a checkpoint holds: its kind, config, model variant (the paper's ablations), iteration,
parameter counts, and what AdaLIN learned.

CHECKPOINT is anything `ugatit translate --checkpoint` reads. The parameter counts are per network, with
the paper's model of the same size beside them (what an ablation removes). rho is summarised per
generator for the decoder's residual blocks (AdaLIN) and up-sampling blocks (ILN), layer by layer: 1 is
instance normalisation, 0 layer normalisation. --plot FILE.svg draws every channel's rho per layer;
--json FILE writes everything printed as JSON.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import UserError
from ._types import CHECKPOINT_HELP

HELP = "print a checkpoint's config, variant, iteration, parameter counts and learned rho"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help=CHECKPOINT_HELP)
    parser.add_argument("--plot", metavar="FILE", help="write the rho of every decoder layer as an SVG plot")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")


def inspect_weights(path: str | Path) -> dict[str, Any]:
    """The report `ugatit inspect` prints, as data (see the module docstring)."""
    from dataclasses import replace

    import torch

    from ..config import ablation_name
    from ..nn.introspect import describe_ablation, parameter_counts, rho_layers, rho_summary
    from ..nn.model import UGATIT
    from ..weights.loading import build_model, read_weights

    weights = read_weights(path)
    model = build_model(weights, discriminators=True)
    cfg = model.config
    counts = parameter_counts(model)
    if cfg.variant == "official":
        paper_cfg = replace(cfg, g_cam=True, d_cam=True, decoder_norm="adalin")
        with torch.device("meta"):
            paper = parameter_counts(UGATIT(paper_cfg, discriminators=model.has_discriminators))
    else:
        paper = counts
    layers = rho_layers(model)
    return {
        "path": str(weights.path),
        "kind": weights.kind,
        "step": weights.step,
        "config": weights.config.replace(model=cfg).to_dict(),
        "variant": ablation_name(cfg),
        "variant_changes": describe_ablation(cfg),
        "networks": cfg.variant,
        "parameters": counts,
        "parameters_paper_model": paper,
        "rho": rho_summary(layers),
        "rho_layers": [
            {
                "generator": layer.generator,
                "layer": layer.name,
                "label": layer.label,
                "position": layer.position,
                "kind": layer.kind,
                "mean": float(layer.values.mean()),
                "min": float(layer.values.min()),
                "max": float(layer.values.max()),
                "channels": layer.values.numel(),
            }
            for layer in layers
        ],
        "_layers": layers,
    }


def format_report(report: dict[str, Any]) -> str:
    model = report["config"]["model"]
    kind = "light" if model["light"] else f"full at {model['img_size']} px"
    lines = [
        f"{report['kind']}: {report['path']}",
        f"iteration: {report['step'] if report['step'] is not None else 'not recorded in this kind of file'}",
        f"model: {kind}, ch={model['ch']}, n_res={model['n_res']}, discriminators "
        f"{model['n_layers_global']}/{model['n_layers_local']} layers (global/local), {report['networks']} networks",
        f"variant: {report['variant']}" + ("" if report["variant_changes"] else " (the paper's model)"),
        *(f"  - {change}" for change in report["variant_changes"]),
    ]
    optim, train, data = (report["config"][section] for section in ("optim", "train", "data"))
    lines.append(
        f"training: {optim['iterations']} iterations, lr {optim['lr']:g}, batch {data['batch_size']}, "
        f"seed {train['seed']}"
    )
    lines += ["", "parameters (this model / the paper's model of the same size):"]
    for name, count in report["parameters"].items():
        paper = report["parameters_paper_model"].get(name, count)
        diff = count - paper
        change = "" if diff == 0 else f"  ({diff:+,})"
        lines.append(f"  {name:<7} {count:>14,} / {paper:>14,}{change}")
    lines.append("")
    if not report["rho_layers"]:
        lines.append("rho: none (this decoder has no AdaLIN or ILN layer)")
        return "\n".join(lines)
    lines.append("rho (1 = instance norm, 0 = layer norm): mean [min, max] over the channels")
    for where, row in report["rho"].items():
        lines.append(
            f"  {where:<22} {row['mean']:.3f} [{row['min']:.3f}, {row['max']:.3f}] over {row['layers']} layers"
        )
    lines.append("  per layer:")
    for generator in dict.fromkeys(row["generator"] for row in report["rho_layers"]):
        cells = [f"{row['label']} {row['mean']:.2f}" for row in report["rho_layers"] if row["generator"] == generator]
        lines.append(f"    {generator}: " + ", ".join(cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..utils.files import atomic_write, path_exists, write_json

    if not path_exists(args.checkpoint):
        raise UserError(f"checkpoint not found: {args.checkpoint}")
    report = inspect_weights(args.checkpoint)
    layers = report.pop("_layers")
    print(format_report(report))
    if args.plot:
        from ..viz.rho import svg_rho_plot

        where = f"step {report['step']}" if report["step"] is not None else Path(report["path"]).name
        svg = svg_rho_plot(layers, title=f"learned rho per decoder layer, {where}")
        plot = Path(args.plot)
        try:
            plot.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(plot, lambda tmp: tmp.write_text(svg + "\n", encoding="utf-8"))
        except OSError as exc:
            raise UserError(f"cannot write {plot}: {exc.strerror or exc}") from None
        print(f"wrote {plot}")
    if args.json:
        print(f"wrote {write_json(report, Path(args.json))}")
    return 0
