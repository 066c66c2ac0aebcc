"""A feature extractor whose evaluations are slow, for CLI tests of a signal that lands while rank 0
evaluates (``slow_extractor:make`` given to ``--feature-extractor``).

Not a test module: pytest does not collect it. The training loop's evaluator runs the extractor once
on each real test folder when it is made (two calls, for test sets of up to 16 images), then on the
translations at each evaluation: the first evaluation's first call writes this process's pid to the
file that UGATIT_TEST_EVAL_STARTED names, then waits UGATIT_TEST_EVAL_SECONDS (default 3), long enough
for the test to see the file and send a signal in the middle of the evaluation.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from standin_extractor import StandIn

REAL_FOLDER_CALLS = 2


class Slow(StandIn):
    name = "slow stand-in extractor (tests)"

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        marker = os.environ.get("UGATIT_TEST_EVAL_STARTED")
        if marker and self.calls == REAL_FOLDER_CALLS:
            Path(marker).write_text(str(os.getpid()))
            time.sleep(float(os.environ.get("UGATIT_TEST_EVAL_SECONDS", "3")))
        self.calls += 1
        return super().forward(x)


def make() -> torch.nn.Module:
    return Slow()
