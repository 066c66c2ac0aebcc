"""ugatit.training.distributed beyond what tests/cli/test_distributed_cli.py sees from outside: that a rank
which leaves its process group leaves no gloo threads behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import ugatit

#: One rank on its own, in a fresh interpreter (the import order is the point): its native threads before
#: joining and after leaving, with a torch.optim optimiser built in between, as the trainer does.
RANK = """
import os, torch
from ugatit.training.distributed import Distributed

def threads():
    return sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))

before = threads()
dist = Distributed.from_environment()
dist.start(torch.device("cpu"))
dist.agree([1], torch.device("cpu"))  # the gloo threads are running now
torch.optim.Adam([torch.nn.Parameter(torch.ones(1))])  # the first optimiser imports torch._dynamo
dist.stop()
print(before)
print(threads())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads through Linux's /proc")
def test_leaving_the_process_group_stops_its_threads():
    """A default group that outlived destroy_process_group kept gloo's threads running into the
    interpreter's exit, where a rank that had finished its run now and then died of SIGABRT."""
    src = str(Path(ugatit.__file__).parents[1])
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
        RANK="0",
        WORLD_SIZE="1",
        LOCAL_RANK="0",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        OMP_NUM_THREADS="1",
    )
    env.pop("TORCHELASTIC_RUN_ID", None)  # no launcher to watch
    result = subprocess.run([sys.executable, "-c", RANK], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.splitlines()[-2:]
    assert after == before, result.stdout
