"""The kill -9 soak (benchmarks/soak.py) in short: three runs killed at a random point, or while a
checkpoint is being written, then resumed to the end, must hold exactly the state of a run that was never
interrupted. docs/reliability.md has the long version's table.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_killed_runs_resume_to_the_uninterrupted_state(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    soak = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "soak", soak)  # its dataclasses look their module up there
    spec.loader.exec_module(soak)
    # Sessions without tensorboard start sooner (tests/cli/faults/sitecustomize.py)
    faults = ROOT / "tests" / "cli" / "faults"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(faults), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("UGATIT_TEST_NO_TENSORBOARD", "1")

    results = soak.soak(
        tmp_path, trials=3, iters=12, save_every=3, max_kills=1, workers=0, seed=1, log=lambda line: None
    )
    assert sum(r.kills for r in results) >= 2, [vars(r) for r in results]
    assert all(r.identical for r in results), [vars(r) for r in results]
    assert sum(r.unloadable for r in results) == 0 and sum(r.leftover for r in results) == 0
    assert max(n for r in results for n in r.lost) <= 3  # never more than one checkpoint interval
