"""Training on several processes (torchrun): ranks, averaged gradients, and agreeing when to stop.

`torchrun --nproc-per-node N -m ugatit train DATA` starts N processes that train one model. Each rank
draws its own shard of the one seeded unpaired stream (`UnpairedLoader(rank=, world_size=)`), so the
global batch is N x `data.batch_size`, and the gradients of every update are averaged over the ranks
before the optimiser steps: what DistributedDataParallel does, done here by hand because each of
U-GAT-IT's networks runs several forward passes per backward (a discriminator sees real, then fake
images), which DDP's reducer does not allow.

Everything else stays identical on every rank without being sent: the weights start equal (same seed,
or the same checkpoint), every rank applies the same averaged gradients with the same Adam state, so
the weights, the spectral-norm u/v (each rank runs the same power iteration on the same weights and
u), the rho clamp and the lr schedule stay equal bit for bit. `Distributed.check_in_sync` verifies it
at every checkpoint. After each iteration the ranks agree, in one small collective, on whether any of
them was asked to stop (a signal) or saw a non-finite loss, so all stop at the same iteration. Rank 0
alone writes the run folder.

torchrun starts each rank in a process session of its own, so a signal to the launcher's process group
(kill -9 of a job, a closed terminal) does not reach the ranks. A rank launched by torchrun therefore
stops when its launcher is gone (`utils.parent_watch`): as after a SIGTERM, with every rank agreeing, a
checkpoint and the run's lock released.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import UserError
from ..utils.parent_watch import stop_with_parent

#: How long a collective may wait for the other ranks before the job gives up on them. torchrun ends
#: the other ranks when one dies; this bounds the wait when a whole node disappears.
DEFAULT_TIMEOUT_S = 1800.0
#: Gradients are averaged in buckets of at most this many values, so a full model's 279M-parameter
#: generator pair is not copied into one flat buffer.
BUCKET_NUMEL = 16 * 1024 * 1024
#: Set by a launcher that runs torchrun's agent in its own process (`ugatit train --nproc`) for the ranks it
#: starts: its pid, whose death ends them.
LAUNCHER_PID_ENV = "UGATIT_LAUNCHER_PID"


class RankFailed(UserError):
    """A collective failed: another rank died or lost contact; nothing of the unfinished step was saved."""


@dataclass
class Distributed:
    """This process's place in a torchrun job. `Distributed.single()` is a process on its own, where every
    method does nothing, so the trainer calls them unconditionally. Under torchrun even one rank joins a
    process group and runs the collectives (with itself): `torchrun --nproc-per-node 1` measures what
    the distributed path costs."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False  # by torchrun

    @classmethod
    def single(cls) -> Distributed:
        return cls()

    @classmethod
    def from_environment(cls) -> Distributed:
        """The ranks torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK; one process without them."""
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            return cls.single()
        try:
            rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
            local = int(os.environ.get("LOCAL_RANK", rank))
        except ValueError:
            raise UserError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (they are set by torchrun)") from None
        return cls(rank=rank, world_size=world, local_rank=local, launched=True)

    @property
    def enabled(self) -> bool:
        return self.launched

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints, logs, TensorBoard, sample grids and the progress bar."""
        return self.rank == 0

    # --- Set-up -----------------------------------------------------------------------------------------

    def start(
        self,
        device: torch.device,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        """Join the process group (NCCL on CUDA, gloo on the CPU), unless already joined; under a
        torchrun launcher, stop when it is gone (see the module docstring)."""
        import torch.distributed as dist

        # torch.distributed.nn.functional takes `group.WORLD` as default arguments, bound at its import.
        # Imported after init_process_group (the first torch.optim optimiser imports torch._dynamo, which
        # imports it), it holds the default group past destroy_process_group: gloo's threads then run on
        # into the interpreter's exit, where a rank that finished its run could die of SIGABRT ("terminate
        # called without an active exception"), failing the job. Imported first, the defaults are None.
        import torch.distributed.nn

        if not self.enabled or dist.is_initialized():
            return
        die_with_launcher(notify)
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))

    def stop(self) -> None:
        import torch.distributed as dist

        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    # --- Every iteration --------------------------------------------------------------------------------

    def average_gradients(self, params: Iterable[nn.Parameter]) -> None:
        """Replace each gradient by its mean over the ranks (in buckets; no-op on one process)."""
        if not self.enabled:
            return
        grads = [p.grad for p in params if p.grad is not None]
        for bucket in _buckets(grads, BUCKET_NUMEL):
            flat = torch.cat([g.reshape(-1) for g in bucket]) if len(bucket) > 1 else bucket[0].reshape(-1)
            self._all_reduce(flat)
            flat.div_(self.world_size)
            if len(bucket) > 1:
                offset = 0
                for g in bucket:
                    g.copy_(flat[offset : offset + g.numel()].view_as(g))
                    offset += g.numel()
            elif flat.data_ptr() != bucket[0].data_ptr():
                bucket[0].copy_(flat.view_as(bucket[0]))

    def agree(self, values: Sequence[int], device: torch.device) -> list[int]:
        """Each value's maximum over the ranks (small non-negative integers: flags, signal numbers), for
        every rank: one small collective."""
        if not self.enabled:
            return [int(v) for v in values]
        tensor = torch.tensor([float(v) for v in values], device=device)
        self._all_reduce(tensor, op="max")
        return [int(v) for v in tensor.tolist()]

    def check_in_sync(self, model: nn.Module, device: torch.device) -> None:
        """Raise if the ranks' networks have drifted apart (they never should): the spectral-norm vectors
        are compared whole, bit for bit, every other tensor by its sum and its sum of squares."""
        if not self.enabled:
            return
        with torch.no_grad():
            state = model.state_dict()
            vectors = [t.reshape(-1).double() for k, t in state.items() if k.endswith(("weight_u", "weight_v"))]
            sums = [torch.stack([t.double().sum(), t.double().square().sum()]) for t in state.values()]
            fingerprint = torch.cat([*vectors, *sums]).to(device)
        gathered = self._all_gather(fingerprint)
        if not all(torch.equal(gathered[0], other) for other in gathered[1:]):
            raise RuntimeError("the ranks' networks differ: the distributed run lost its synchronisation")

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.enabled:
            self._collective(dist.barrier)

    # --- Plumbing ---------------------------------------------------------------------------------------

    def _all_reduce(self, tensor: Tensor, op: str = "sum") -> None:
        import torch.distributed as dist

        self._collective(dist.all_reduce, tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)

    def _all_gather(self, tensor: Tensor) -> list[Tensor]:
        import torch.distributed as dist

        out = [torch.empty_like(tensor) for _ in range(self.world_size)]
        self._collective(dist.all_gather, out, tensor)
        return out

    def _collective(self, function, *args, **kwargs) -> None:
        try:
            function(*args, **kwargs)
        except (RuntimeError, ValueError) as exc:  # gloo/NCCL: a peer closed its connection or timed out
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RankFailed(
                f"rank {self.rank} of {self.world_size}: another rank stopped answering ({reason}); "
                "the job stops without saving the unfinished iteration"
            ) from None


def _buckets(tensors: list[Tensor], limit: int) -> Iterable[list[Tensor]]:
    bucket: list[Tensor] = []
    size = 0
    for t in tensors:
        if bucket and (size + t.numel() > limit or t.dtype != bucket[0].dtype):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel()
    if bucket:
        yield bucket


def launched_by_torchrun() -> bool:
    """Whether this process is a rank that a torchrun agent started (`torchrun`, or `ugatit train --nproc`)."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def die_with_launcher(notify: Callable[[str], None] | None = None) -> None:
    """Under a torchrun agent: stop this process as after a SIGTERM when the agent is gone (see
    `utils.parent_watch`). Its pid is what the launcher recorded (`LAUNCHER_PID_ENV`), else this process's
    parent at the call."""
    if not launched_by_torchrun():
        return
    recorded = os.environ.get(LAUNCHER_PID_ENV, "")
    launcher = int(recorded) if recorded.isdigit() else os.getppid()
    stop_with_parent(launcher, f"the launcher (pid {launcher}) is gone: stopping this rank as for a SIGTERM", notify)


def describe(dist: Distributed | None, batch_size: int) -> str:
    """'2 processes x batch 1 = global batch 2' for the start notice."""
    world = dist.world_size if dist is not None else 1
    return f"{world} processes x batch {batch_size} = global batch {world * batch_size}"
