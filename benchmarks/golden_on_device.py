"""Golden parity on any device: one official iteration from the golden init_params, errors printed.

    python benchmarks/golden_on_device.py --device cuda [--precision bf16]

The tests check this on the CPU with the tolerances of docs/faithfulness.md; this script reports how far another device
(or precision) lands from the official CPU outputs, as a table, without asserting anything. TF32 is
turned off so that fp32 means fp32 on Ampere and later GPUs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ugatit.config import LossConfig, ModelConfig, OptimConfig
from ugatit.nn.model import NETWORK_NAMES, UGATIT
from ugatit.training.parity import FlipRule
from ugatit.training.step import TrainingStep

DATA = Path(__file__).resolve().parents[1] / "tests" / "assets"


def errors(mode: str, device: str, precision: str, official: bool) -> dict[str, float]:
    golden = torch.load(DATA / f"ugatit_official_ch4_res2_img96_{mode}.pt", weights_only=True)
    cfg = golden["config"]
    model = UGATIT(ModelConfig(img_size=96, ch=cfg["ch"], n_res=cfg["n_res"], light=cfg["light"]))
    model.load_official_state_dict(golden["init_params"])
    model.to(device)
    step = TrainingStep(
        model,
        LossConfig(),
        OptimConfig(lr=cfg["lr"], weight_decay=cfg["weight_decay"]),
        precision=precision,
        official=official,
    )
    losses = step(golden["real_A"].to(device), golden["real_B"].to(device), 1)
    loss_rel = max(abs(losses[k].item() - v) / abs(v) for k, v in golden["step1_losses"].items())
    ours = model.official_state_dict()
    weights, uv = [], 0.0
    for net in NETWORK_NAMES:
        for key, ref in golden["step1_params"][net].items():
            got = ours[net][key].float().cpu()
            if key.endswith(("weight_u", "weight_v")):
                uv = max(uv, (got - ref).abs().max().item())
            else:
                weights.append((key, got, ref))
    found = FlipRule(atol=1e-5, max_error=2.1e-4).compare(weights)  # tests/test_golden.py's STEP_RULE
    return {"loss rel": loss_rel, "params abs": found.worst, "share off": found.share, "u/v abs": uv}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(
        f"\ngolden iteration on {name} ({args.precision}, torch {torch.__version__}); "
        "tolerances (docs/faithfulness.md): "
        "loss rel 1e-6; params: a share under 1e-3 beyond 1e-5, all within 2.1e-4 (fp32)\n"
    )
    print("| model | step | loss rel | params abs | params beyond 1e-5 | u/v abs |")
    print("|---|---|---:|---:|---:|---:|")
    for mode in ("light", "full"):
        for official in (False, True):
            e = errors(mode, args.device, args.precision, official)
            print(
                f"| {mode} | {'official' if official else 'ugatit'} | {e['loss rel']:.1e} | "
                f"{e['params abs']:.1e} | {e['share off']:.1e} | {e['u/v abs']:.1e} |"
            )


if __name__ == "__main__":
    main()
