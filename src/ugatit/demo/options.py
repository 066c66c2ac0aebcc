"""What `ugatit demo` runs, as the library takes it (the CLI builds it from its flags). Kept apart from
`run` so that the command line can read its defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class DemoOptions:
    """What `ugatit demo` runs (see demo/run.py). The defaults take about five minutes on two CPU cores."""

    out: Path = Path("ugatit-demo")
    iters: int = 1000
    img_size: int = 48
    ch: int = 8
    n_res: int = 2
    batch_size: int = 4
    lr: float = 5e-4
    train_count: int = 500
    test_count: int = 64
    seed: int = 0
    device: str = "cpu"
    eval_every: int = 100
    progress: bool = True
    force: bool = False
