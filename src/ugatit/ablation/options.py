"""What `ugatit ablate` runs, as the library takes it (the CLI builds it from its flags). Kept apart from
the runner so that the command line can read its defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import ABLATIONS, Config

#: The built-in tasks with ground truth (demo/shapes.py, demo/morph.py) an ablation can draw.
BUILT_IN_TASKS = ("shapes", "morph")


@dataclass
class AblationOptions:
    """What `ugatit ablate` runs (see ablation/runner.py): every variant under the same base config, seed
    by seed, on a dataset folder (`data`) or a built-in task drawn into `out` (`task`: shapes, morph)."""

    out: Path = Path("ugatit-ablation")
    data: Path | None = None
    task: str | None = None
    variants: tuple[str, ...] = tuple(ABLATIONS)
    seeds: int = 1
    first_seed: int = 0
    config: Config = field(default_factory=Config)  # the base; each run changes model and seed
    # Where runs go, one process each, in parallel: "cpu" once runs them in turn in this process; a list
    # ("cuda:0", "cuda:1", or "cpu" twice on a machine with cores to spare) runs one process per entry.
    devices: tuple[str, ...] = ()
    train_count: int = 500  # built-in task: training images a domain
    test_count: int = 64  # built-in task: test pairs
    gallery: int = 6  # test images a direction shown side by side in the report
    inception_weights: str | None = None
    feature_extractor: str | None = None
    progress: bool = True
