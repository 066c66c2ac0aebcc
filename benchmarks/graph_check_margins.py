"""What the CUDA graph's check sees, measured on the CPU: the tolerances of `CapturedStep._check` against a
faithful replay that rounds like another cuDNN algorithm, and against replays that leave an update out.

    python benchmarks/graph_check_margins.py            # three model sizes, capture after 1 to 3 iterations

The replays are the stand-in graph of tests/training/test_fast.py: "tf32" rounds every convolution's
operands to TF32 (the eager step does not), "exact" sums a bf16 convolution in float64 and rounds once,
"skip G" / "skip D" replay without that optimiser's step. For each of the two checked replays it prints the
largest share of a tensor (of those with more than one value off), the share of all values, the largest
difference in units of lr, and the largest relative loss difference, next to what the rule allows. It asserts
nothing; docs/faithfulness.md quotes it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "training"))

from test_fast import StandInGraph

from ugatit.config import ModelConfig, OptimConfig
from ugatit.nn.model import UGATIT
from ugatit.training.fast import CapturedStep
from ugatit.training.step import TrainingStep

SIZES = [
    {"img_size": 32, "ch": 4, "n_res": 1, "light": True},
    {"img_size": 64, "ch": 8, "n_res": 2, "light": True},
    {"img_size": 64, "ch": 8, "n_res": 2, "light": False},
]
REPLAYS = [
    ("tf32", "fp32", {"rounding": "tf32"}),
    ("exact", "bf16", {"rounding": "exact"}),
    ("skip G", "fp32", {"skip": "G_optim"}),
    ("skip D", "fp32", {"skip": "D_optim"}),
    ("skip G", "bf16", {"skip": "G_optim"}),
]


class Measured(Exception):
    pass


def measuring_check(rows: list, label: str):
    def check(self, expected, saved, pointers):
        rule = self.update_rule()
        lr = float(self.lr)
        state = self.step.model.state_dict()
        for i, (losses, weights) in enumerate(expected, start=1):
            self.replay()
            per_tensor, off, total, worst = 0.0, 0, 0, 0.0
            for got, ref, start in zip(state.values(), weights, saved):
                diff = (got - ref).abs()
                n = int((diff > rule.atol + rule.rtol * (ref - start).abs()).sum())
                off, total, worst = off + n, total + got.numel(), max(worst, diff.max().item())
                if n > 1:
                    per_tensor = max(per_tensor, n / got.numel())
            loss = max(abs(self.outputs[k].item() - v) / max(abs(v), 1e-12) for k, v in losses.items())
            rows.append((label, i, per_tensor, off / total, worst / lr, loss, rule))
        raise Measured

    return check


def main() -> None:
    torch.set_num_threads(1)
    rows: list = []
    print(f"torch {torch.__version__}, one thread\n")
    print("| model | replay | precision | warm-up | replay | tensor share | all | worst (lr) | loss rel | allowed |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    for size in SIZES:
        model_name = f"{'light' if size['light'] else 'full'} {size['img_size']} px ch {size['ch']}"
        for name, precision, options in REPLAYS:
            for warmup in (1, 2, 3):
                rows.clear()
                CapturedStep._check = measuring_check(rows, name)
                graph = StandInGraph(**options)
                torch.manual_seed(0)
                step = TrainingStep(
                    UGATIT(ModelConfig(**size)), optim_cfg=OptimConfig(iterations=100), precision=precision
                )
                fast = CapturedStep(step, graph, warmup=warmup, notify=lambda message: None)
                graph.owner = fast
                torch.manual_seed(1)
                px = size["img_size"]
                for i in range(1, warmup + 2):
                    fast(torch.rand(1, 3, px, px) * 2 - 1, torch.rand(1, 3, px, px) * 2 - 1, i)
                for label, i, per_tensor, share, worst, loss, rule in rows:
                    allowed = f"{rule.max_share:g}, {rule.max_error / float(fast.lr):.1f} lr"
                    print(
                        f"| {model_name} | {label} | {precision} | {warmup} | {i} | {per_tensor:.3f} | {share:.4f} | "
                        f"{worst:.2f} | {loss:.1e} | {allowed} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
