"""The training sampler: endless, seeded, resumable unpaired batches.

Every batch is a pure function of (seed, domain, epoch, index). The order of a domain in an epoch is
a permutation drawn from (seed, domain, epoch); the flip and crop of the sample at position (epoch,
index) are drawn from (seed, domain, epoch, index). Nothing depends on worker scheduling, on
prefetching or on the global torch RNG, so a run resumed from `UnpairedLoader.state_dict()` sees
exactly the batches an uninterrupted run would have seen, with or without workers.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import UserError, require_int
from .images import BadImageCallback, BadImageError, warn_bad_image
from .sources import Source, SourceLike, as_source
from .transforms import train_transform


def default_workers(gpu: bool) -> int:
    """Data loading processes when the config leaves it open. For a GPU: enough to feed 60 it/s where
    the cores exist. One process turns 512 px files into 256 px training crops at ~50 (PNG) to ~120
    (JPEG) per second on a server core, 30-45 when the cores are shared (benchmarks/bench_loader.py,
    docs/benchmarks.md), and 60 it/s at batch 1 needs 120: up to six, leaving two cores to the training
    process. On the CPU the step itself is the bottleneck: two."""
    if not gpu:
        return 2
    return max(2, min(6, (os.cpu_count() or 4) - 2))


def _derived_seed(*parts: object) -> int:
    """A 63-bit seed from a tuple; stable across processes and runs (unlike hash())."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def _generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(_derived_seed(*parts))


class _DomainStream:
    """One domain as an endless stream: position g is sample (epoch, index) = divmod(g, n)."""

    def __init__(self, source: Source, domain: str, seed: int, img_size: int, margin: int, flip: bool):
        self.source = source
        self.domain = domain
        self.seed = seed
        self.img_size = img_size
        self.margin = margin
        self.flip = flip
        self._permutation: tuple[int, list[int]] = (-1, [])
        # Per process: remembers undecodable files so each is decoded (and fails) only once.
        self._bad: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.source)

    def permutation(self, epoch: int) -> list[int]:
        """The order of the domain's images in `epoch`."""
        if self._permutation[0] != epoch:
            order = torch.randperm(len(self.source), generator=_generator(self.seed, self.domain, "order", epoch))
            self._permutation = (epoch, order.tolist())
        return self._permutation[1]

    def sample(self, position: int) -> tuple[torch.Tensor | None, list[tuple[str, str]]]:
        """The augmented sample at `position` and the (name, reason) of files skipped on the way.

        An undecodable file is replaced by the next one in the epoch's order (wrapping around),
        augmented with the randomness of the original position, so the substitution is as
        deterministic as everything else. Returns None when no file of the domain decodes.
        """
        n = len(self.source)
        epoch, index = divmod(position, n)
        order = self.permutation(epoch)
        skipped: list[tuple[str, str]] = []
        for step in range(n):
            item = order[(index + step) % n]
            if item not in self._bad:
                try:
                    img = self.source.load(item)
                except BadImageError as exc:
                    self._bad[item] = exc.reason
                else:
                    rng = _generator(self.seed, self.domain, "augment", epoch, index)
                    return train_transform(img, self.img_size, self.margin, self.flip, rng), skipped
            skipped.append((self.source.name(item), self._bad[item]))
        return None, skipped


class _UnpairedBatches(Dataset):
    """Map-style dataset whose keys are (position A, position B); an item is a whole batch.

    Building whole batches in one worker keeps the DataLoader's in-order delivery aligned with
    batch boundaries, so the main process always knows which positions it has consumed.
    """

    def __init__(self, stream_a: _DomainStream, stream_b: _DomainStream, batch_size: int):
        self.streams = {"A": stream_a, "B": stream_b}
        self.batch_size = batch_size

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        batch: dict[str, Any] = {"key": tuple(key), "bad": [], "exhausted": None}
        for domain, start in zip("AB", key):
            stream = self.streams[domain]
            samples = []
            for position in range(start, start + self.batch_size):
                tensor, skipped = stream.sample(position)
                batch["bad"].extend(skipped)
                if tensor is None:
                    # Raised in the main process: a UserError raised here would come back
                    # wrapped with a worker traceback instead of as one line.
                    batch["exhausted"] = stream.source.label
                    return batch
                samples.append(tensor)
            batch[domain] = torch.stack(samples)
        return batch


class _EndlessKeys(Sampler):
    """Yields (start A, start B), (start A + step, start B + step), ... forever."""

    def __init__(self, start_a: int, start_b: int, step: int):
        self.start_a, self.start_b, self.step = start_a, start_b, step

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for k in itertools.count():
            yield (self.start_a + k * self.step, self.start_b + k * self.step)


def _pass_through(batch: Any) -> Any:
    """Collate for pre-built batches (module level so it pickles to spawned workers)."""
    return batch


def _leave_stop_signals_to_the_main_process(worker_id: int) -> None:
    """worker_init_fn: SIGINT and SIGTERM are for the main process alone.

    Ctrl-C, `timeout`, systemd and Slurm signal the whole process group. PyTorch's workers die of
    SIGTERM from anyone but their parent, and the main process then raises "DataLoader worker ... is
    killed by signal" wherever it is, before it can save. Ignoring both keeps the workers serving until
    the main process has finished its iteration and saved; it shuts them down itself (and a worker
    whose parent died exits on its own).
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


class UnpairedLoader:
    """Endless, seeded, resumable batches ``(real_A, real_B)`` of shape (B, 3, img_size, img_size).

    The two domains are shuffled independently, each with a new permutation every epoch of its
    own, and batches run across epoch boundaries. Undecodable files are reported once each through
    `on_bad_image(name, reason)` (default: a `BadImageWarning`) and replaced by the next file.
    `state_dict()` is the position of the next batch to be handed out; loading it into a new
    loader with the same sources and seed continues bit-identically, whatever `num_workers`.

    With `world_size` > 1 (distributed training) the stream is dealt out in turns: a global batch is
    `world_size` consecutive batches of `batch_size`, and rank r takes the r-th. So N ranks with batch
    B see exactly the images (and augmentations) that one process with batch N x B sees, and the
    position, shared by all ranks, stays that of the whole stream.
    """

    def __init__(
        self,
        domain_a: SourceLike,
        domain_b: SourceLike,
        img_size: int,
        batch_size: int = 1,
        seed: int = 0,
        num_workers: int = 0,
        margin: int = 30,
        flip: bool = True,
        on_bad_image: BadImageCallback | None = None,
        pin_memory: bool = False,
        prefetch_factor: int = 2,
        rank: int = 0,
        world_size: int = 1,
    ):
        require_int("world_size", world_size, minimum=1)
        if not 0 <= rank < world_size:
            raise UserError(f"rank must be in [0, {world_size}), got {rank}")
        require_int("img_size", img_size, minimum=1)
        require_int("batch_size", batch_size, minimum=1)
        require_int("num_workers", num_workers, minimum=0)
        require_int("margin", margin, minimum=0)
        require_int("prefetch_factor", prefetch_factor, minimum=1)
        self.source_a = as_source(domain_a, label="domain A")
        self.source_b = as_source(domain_b, label="domain B")
        self.img_size = img_size
        self.batch_size = batch_size
        self.seed = int(seed)
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.rank, self.world_size = rank, world_size
        self.on_bad_image = on_bad_image or warn_bad_image
        streams = [
            _DomainStream(source, domain, self.seed, img_size, margin, flip)
            for domain, source in (("A", self.source_a), ("B", self.source_b))
        ]
        self._dataset = _UnpairedBatches(*streams, batch_size=batch_size)
        self._position = {"A": 0, "B": 0}  # stream position of the next global batch
        self._iterator: Iterator[dict[str, Any]] | None = None
        self._reported: dict[str, str] = {}

    @classmethod
    def from_config(cls, config: Any, domain_a: SourceLike, domain_b: SourceLike, **overrides: Any) -> UnpairedLoader:
        """Build from a `ugatit.config.Config` (data section, model.img_size, train.seed). Without a
        `data.num_workers`, `default_workers` decides, for a GPU where `pin_memory` is asked for."""
        options: dict[str, Any] = dict(
            img_size=config.model.img_size,
            batch_size=config.data.batch_size,
            seed=config.train.seed,
            num_workers=config.data.num_workers,
            margin=config.data.resize_margin,
            flip=config.data.flip,
        )
        options.update(overrides)
        if options["num_workers"] is None:
            options["num_workers"] = default_workers(gpu=bool(options.get("pin_memory")))
        return cls(domain_a, domain_b, **options)

    @property
    def sizes(self) -> tuple[int, int]:
        """Number of images in domains A and B."""
        return len(self.source_a), len(self.source_b)

    @property
    def bad_images(self) -> dict[str, str]:
        """Every file reported as undecodable so far: name -> reason."""
        return dict(self._reported)

    def __iter__(self) -> UnpairedLoader:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._iterator is None:
            self._iterator = iter(self._make_dataloader())
        batch = next(self._iterator)
        self._report(batch["bad"])
        if batch["exhausted"] is not None:
            self.close()
            raise UserError(f"{batch['exhausted']}: none of its images could be decoded")
        expected = (self._position["A"] + self._offset, self._position["B"] + self._offset)
        if tuple(batch["key"]) != expected:  # would mean the DataLoader reordered batches
            raise RuntimeError(f"data loader out of order: got batch {batch['key']}, expected {expected}")
        self._position["A"] += self.batch_size * self.world_size
        self._position["B"] += self.batch_size * self.world_size
        return batch["A"], batch["B"]

    @property
    def _offset(self) -> int:
        """Where this rank's batch starts within a global batch."""
        return self.rank * self.batch_size

    def _make_dataloader(self) -> DataLoader:
        sampler = _EndlessKeys(
            self._position["A"] + self._offset, self._position["B"] + self._offset, self.batch_size * self.world_size
        )
        extra: dict[str, Any] = {}
        if self.num_workers > 0:
            extra["prefetch_factor"] = self.prefetch_factor
        return DataLoader(
            self._dataset,
            batch_size=None,  # items are whole batches already
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=_pass_through,
            pin_memory=self.pin_memory,
            # A private generator: otherwise every new iterator draws its base seed from the global
            # torch RNG, and a resumed run's global RNG would drift from an uninterrupted one.
            generator=torch.Generator().manual_seed(self.seed),
            worker_init_fn=_leave_stop_signals_to_the_main_process if self.num_workers > 0 else None,
            **extra,
        )

    def _report(self, skipped: list[tuple[str, str]]) -> None:
        for name, reason in skipped:
            if name not in self._reported:
                self._reported[name] = reason
                self.on_bad_image(name, reason)

    def state_dict(self) -> dict[str, Any]:
        """Position of the next batch: {"A": {"epoch", "index", "size"}, "B": {...}, "seed"}.

        Counts only batches already returned by `__next__`, never those prefetched by workers.
        """
        state: dict[str, Any] = {"seed": self.seed, "world_size": self.world_size, "batch_size": self.batch_size}
        for domain, size in zip("AB", self.sizes):
            epoch, index = divmod(self._position[domain], size)
            state[domain] = {"epoch": epoch, "index": index, "size": size}
        return state

    def load_state_dict(self, state: dict[str, Any], notify: Callable[[str], None] | None = None) -> None:
        """Continue from a `state_dict()`; batches prefetched from the old position are dropped.

        Says so (through `notify`, else as a warning) when the seed, a domain's size or the processes
        and batch the stream is dealt out to differ from the checkpoint's: the run continues, but no
        longer matches the uninterrupted one.
        """
        say = notify or (lambda message: warnings.warn(message, stacklevel=3))
        positions = {}
        for domain, size in zip("AB", self.sizes):
            epoch, index, saved_size = _parse_position(state, domain)
            if saved_size is not None and saved_size != size:
                say(
                    f"domain {domain} has {size} images but had {saved_size} when the data position "
                    f"was saved: the batches after resuming differ from an uninterrupted run"
                )
            if index >= size:  # the domain shrank: start its next epoch
                epoch, index = epoch + 1, 0
            positions[domain] = epoch * size + index
        world, batch = state.get("world_size"), state.get("batch_size")
        if world is not None and world != self.world_size:
            batch = self.batch_size if batch is None else batch
            say(
                f"resuming on {_processes(self.world_size)}, saved on {world}: the global batch changes from "
                f"{world * batch} to {self.world_size * self.batch_size} images, and so does which images each "
                "process draws; from here on the run differs from one that was never stopped (resume on "
                f"{_processes(world)}, `world_size={world}`, to continue it exactly)"
            )
        elif batch is not None and batch != self.batch_size:
            say(
                f"the data was dealt out in batches of {batch} and now of {self.batch_size}: each process sees "
                "other images than an uninterrupted run would (the stream itself goes on where it stopped)"
            )
        saved_seed = state.get("seed")
        if saved_seed is not None and int(saved_seed) != self.seed:
            say(
                f"data seed {self.seed} differs from the saved seed {saved_seed}: the batches after "
                "resuming differ from an uninterrupted run"
            )
        self.close()
        self._position = positions

    def close(self) -> None:
        """Stop the workers (if any); iterating again restarts them at the current position."""
        # Dropping the only reference shuts a multiprocessing iterator's workers down (its __del__).
        self._iterator = None

    def __enter__(self) -> UnpairedLoader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _parse_position(state: Any, domain: str) -> tuple[int, int, int | None]:
    try:
        entry = state[domain]
        epoch, index = int(entry["epoch"]), int(entry["index"])
        size = entry.get("size")
        size = None if size is None else int(size)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise UserError(f"malformed data position for domain {domain} in the checkpoint") from None
    if epoch < 0 or index < 0:
        raise UserError(f"malformed data position for domain {domain} in the checkpoint")
    return epoch, index, size


def _processes(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"
