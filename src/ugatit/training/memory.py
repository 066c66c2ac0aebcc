"""What one training iteration costs in memory, before the first one runs: a batch that cannot fit is
refused at once, with the largest that would, instead of swapping for minutes or being killed.

The estimate is the weights with their gradients and both Adam moments (16 bytes a parameter in fp32),
plus the activations kept for the backward passes, which grow with the batch, the base channels and the
image area: `ACTIVATION_BYTES` + `ACTIVATION_BYTES_PER_BLOCK` x n_res bytes for each image, channel and
pixel (half of it in bf16). The constants come from the peak resident memory of one iteration at batch
1 and at batch 32 (8 for the largest), CPU, fp32, torch 2.13, for light and full models from 32 px ch 4
to 128 px ch 16 and n_res 1 to 4: each image took 690 to 1,020 bytes per channel and pixel, and the fit
(550 + 90 x n_res) is below every measurement. The estimate is a lower bound: what it refuses does not
fit, and what it lets through may still not.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import Config
from ..errors import UserError
from ..nn.model import UGATIT
from ..utils.files import size_text

ACTIVATION_BYTES = 550
ACTIVATION_BYTES_PER_BLOCK = 90
#: Weights, gradients and two Adam moments, fp32.
BYTES_PER_PARAMETER = 16
#: Past this share of the free memory, the run says what an iteration will take.
WARN_SHARE = 0.5


def iteration_bytes(config: Config) -> tuple[int, int]:
    """(bytes that do not depend on the batch, bytes per image of the batch): see the module docstring."""
    model = config.model
    with torch.device("meta"):  # shapes only
        parameters = sum(p.numel() for p in UGATIT(model).parameters())
    per_image = model.ch * model.img_size**2 * (ACTIVATION_BYTES + ACTIVATION_BYTES_PER_BLOCK * model.n_res)
    if config.train.precision == "bf16":
        per_image //= 2
    return parameters * BYTES_PER_PARAMETER, per_image


def available_bytes(device: torch.device) -> int | None:
    """Free memory for training on `device`: the GPU's free memory, or the system's available memory
    (Linux's MemAvailable); None where it cannot be told."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    if device.type != "cpu":
        return None
    found = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    limit = _cgroup_room()  # a container's limit, which MemAvailable (the host's) does not show
    if limit is not None:
        found = limit if found is None else min(found, limit)
    return found


def _cgroup_room() -> int | None:
    """What the memory limit of this process's control group leaves (cgroup v2, then v1), or None."""
    candidates = [
        (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")),
        (Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"), Path("/sys/fs/cgroup/memory/memory.usage_in_bytes")),
    ]
    for limit_file, usage_file in candidates:
        try:
            limit, usage = limit_file.read_text().strip(), int(usage_file.read_text())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:  # "max", or v1's "no limit" of 2^63
            return max(0, int(limit) - usage)
    return None


def check_memory(config: Config, device: torch.device, notify: Callable[[str], None], processes: int = 1) -> None:
    """Refuse a batch whose iteration cannot fit in the memory `device` has free (shared by `processes`
    ranks on this machine when they train on its CPU); say what it takes when it needs much of it."""
    available = available_bytes(device)
    if available is None:
        return
    if device.type == "cpu":
        available //= max(1, processes)
    fixed, per_image = iteration_bytes(config)
    batch = config.data.batch_size
    needed = fixed + batch * per_image
    where = f"on {device}" if device.type != "cpu" else "in this machine's memory"
    if device.type == "cpu" and processes > 1:
        where += f" for each of {processes} processes"
    if needed > available:
        fits = (available - fixed) // per_image if available > fixed else 0
        advice = (
            f"the largest batch that fits is about {fits} (`data.batch_size={fits}`)"
            if fits >= 1
            else "this model does not fit at any batch size: choose a smaller `model.img_size` or `model.ch`"
        )
        raise UserError(
            f"one iteration of batch {batch} at {config.model.img_size} px needs about {size_text(needed)} of "
            f"memory (estimated, at least), more than the {size_text(available)} free {where}: {advice}"
        )
    if needed > WARN_SHARE * available:
        notify(
            f"one iteration of batch {batch} will take about {size_text(needed)} of the {size_text(available)} "
            f"free {where} (estimated)"
        )


def local_processes() -> int:
    """Ranks of this job on this machine (torchrun's LOCAL_WORLD_SIZE), 1 outside torchrun."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1
