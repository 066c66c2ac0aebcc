"""The fast path on CUDA: cuDNN autotuning and the whole training iteration replayed as one CUDA graph.

An eager iteration launches thousands of small kernels and the GPU waits on the host between them. A
CUDA graph records the kernels of one iteration once and replays them with a single launch.
`CapturedStep` wraps a `TrainingStep`:

1. the first `warmup` iterations run eagerly (on CUDA on a side stream, as torch's graph recipe asks),
   so that cuDNN has chosen its algorithms and Adam has created its state;
2. then it captures `TrainingStep.iterate` on static input buffers, with the learning rate a device
   tensor the graph reads (written in place before each replay);
3. it checks the graph before trusting it: from the same state, two eager iterations and two replays
   must give the same losses (to rounding) and the same updates (by `parity.FlipRule`), and every
   weight, buffer and optimiser state must still live in the same memory (what a replay writes is what
   the next one reads). The state is put back in between, so the check costs two iterations' time and
   trains nothing twice. It holds one copy of the state on the host (what it puts back) and the two
   eager iterations' weights on the device, where they are compared;
4. any failure (capture, check) puts the state back, says why once, and continues eagerly.

cuDNN autotuning (`torch.backends.cudnn.benchmark`) is on during this step's eager calls and capture
only, and put back as it was after each: the rest of the program keeps its own setting.

Everything but `CudaGraph` (a dozen lines of torch.cuda calls) runs on the CPU too, where the tests
drive it with a stand-in graph that records the function and re-runs it on replay.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable

import torch
from torch import Tensor

from .parity import FlipRule
from .step import TrainingStep, learning_rate

Replay = Callable[[], None]


class CudaGraph:
    """The CUDA-only part: a side stream for warm-up, and capture with torch.cuda.graph."""

    def __init__(self, device: torch.device):
        self.device = device

    def prepare(self, step: TrainingStep) -> None:
        # Optimizer.step refuses to be captured unless its groups say capturable (fused Adam keeps its
        # step counters on the device either way).
        for optim in step.optimizers():
            for group in optim.param_groups:
                group["capturable"] = True

    @contextlib.contextmanager
    def warmup(self):
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            yield
        torch.cuda.current_stream(self.device).wait_stream(side)

    def capture(self, fn: Callable[[], dict[str, Tensor]]) -> tuple[Replay, dict[str, Tensor]]:
        graph = torch.cuda.CUDAGraph()
        # thread_local: the data loader's pin-memory thread may allocate pinned memory meanwhile.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            outputs = fn()
        return graph.replay, outputs


@contextlib.contextmanager
def cudnn_autotuning():
    """cuDNN benchmarks the convolution algorithms of each new shape inside this block (the graph records
    the ones chosen during warm-up); the setting is put back after it."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


class GraphMismatch(RuntimeError):
    """The replayed graph did not compute what the eager iteration computes."""


class CapturedStep:
    """A TrainingStep that, after `warmup` eager iterations, replays one captured CUDA graph per call.

    Same call and results as TrainingStep, except that the returned loss tensors are the graph's own
    outputs, overwritten by the next call: read or copy them first. `graph` is the backend (CudaGraph
    on CUDA; the tests pass a stand-in); `notify` hears why a capture was given up."""

    def __init__(
        self,
        step: TrainingStep,
        graph,
        *,
        warmup: int = 3,
        validate: bool = True,
        notify: Callable[[str], None] = print,
    ):
        self.step = step
        self.graph = graph
        self.warmup = max(1, warmup)  # Adam's state must exist before capture
        self.validate = validate
        self.notify = notify
        self.calls = 0
        self.replay: Replay | None = None
        self.given_up: str | None = None
        # One learning-rate tensor on the device for both optimisers: the graph reads it, and it is written
        # in place before each call, without waiting for the device. This and `graph.prepare` are the
        # graph's changes to the step's optimisers; `state_dict` saves the state as if they were not made.
        device = next(step.model.parameters()).device
        self.lr = torch.tensor(float(step.optim_cfg.lr), device=device)
        self._read_learning_rate_tensor()
        graph.prepare(step)

    def _read_learning_rate_tensor(self) -> None:
        for optim in self.step.optimizers():
            for group in optim.param_groups:
                group["lr"] = self.lr

    @property
    def captured(self) -> bool:
        return self.replay is not None

    def __call__(self, real_A: Tensor, real_B: Tensor, step: int) -> dict[str, Tensor]:
        self.calls += 1
        self.lr.fill_(learning_rate(step, self.step.optim_cfg))
        real_A, real_B = self.step._layout(real_A), self.step._layout(real_B)
        if self.replay is not None and real_A.shape == self.inputs[0].shape and real_B.shape == self.inputs[1].shape:
            self.inputs[0].copy_(real_A, non_blocking=True)
            self.inputs[1].copy_(real_B, non_blocking=True)
            self.replay()
            return self.outputs
        with cudnn_autotuning():
            if self.replay is None and self.given_up is None and self.calls > self.warmup:
                return self._capture(real_A, real_B)
            with self.graph.warmup() if self.given_up is None else contextlib.nullcontext():
                return self.step.iterate(real_A, real_B)

    # --- Capture and its check --------------------------------------------------------------------------

    def _capture(self, real_A: Tensor, real_B: Tensor) -> dict[str, Tensor]:
        self.inputs = (real_A.clone(), real_B.clone())
        pointers = [t.data_ptr() for t in self._state()]
        # The check's one copy on the host: what it puts back. Weights, buffers and Adam's two moments are
        # three times the weights (8 GB for the full model at 256 px).
        saved = [t.to("cpu", copy=True) for t in self._state()]
        start = time.perf_counter()
        try:
            expected = self._eager_reference(saved) if self.validate else []
            self.step.autocast_cache = False
            self.replay, self.outputs = self.graph.capture(lambda: self.step.iterate(*self.inputs))
            if expected:
                self._check(expected, saved, pointers)
                self._restore(saved)
            self.replay()  # this call's iteration
            checked = ", two replays checked against eager iterations" if expected else ""
            self.notify(
                f"training iteration captured as a CUDA graph after {self.warmup} eager iterations "
                f"({time.perf_counter() - start:.1f} s{checked})"
            )
            return self.outputs
        except Exception as exc:
            self.replay = None
            self.given_up = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self._restore(saved)
            self.step.autocast_cache = True
            self.notify(f"CUDA graph not used ({self.given_up}); training continues eagerly")
            for optim in self.step.optimizers():
                optim.zero_grad(set_to_none=True)
            return self.step.iterate(real_A, real_B)

    def _eager_reference(self, saved: list[Tensor]) -> list[tuple[dict[str, float], list[Tensor]]]:
        """Losses and weights after one and two eager iterations from the current state, which is then
        put back. The weights stay on the device (twice the weights: 5.4 GB for the full model at 256 px),
        where the check compares them."""
        reference = []
        for _ in range(2):
            losses = self.step.iterate(*self.inputs)
            weights = [t.detach().clone() for t in self.step.model.state_dict().values()]
            reference.append(({k: v.item() for k, v in losses.items()}, weights))
        self._restore(saved)
        return reference

    def update_rule(self) -> FlipRule:
        """How closely a replay's updates must follow the eager iterations' (see `_check`)."""
        lr = float(self.lr)
        if self.step.precision == "fp32" and not torch.backends.cudnn.allow_tf32:
            # Only the summation order differs, as between two CPUs: the golden test's rule.
            return FlipRule(atol=0.1 * lr + 1e-6, max_error=4.2 * lr + 1e-6, max_share=1e-3)
        share = 0.25 if self.step.precision == "fp32" else 0.5
        return FlipRule(atol=0.25 * lr + 1e-6, rtol=0.5, max_error=8 * lr + 1e-6, max_share=share)

    def loss_tolerance(self) -> float:
        """Relative tolerance on each loss (see `_check`)."""
        if self.step.precision == "fp32":
            return 2e-3 if torch.backends.cudnn.allow_tf32 else 1e-4
        return 2e-2

    def _check(self, expected, saved: list[Tensor], pointers: list[int]) -> None:
        """Two replays against two eager iterations from the same state (`saved`): the same losses to
        rounding, the same updates by `update_rule`, and every state tensor in the memory it had, so that
        each replay reads what the last one wrote.

        "To rounding" is wide on a GPU, where a captured convolution may run another cuDNN algorithm than
        the eager one, summing in another order: in TF32 (PyTorch's default for fp32 convolutions) that moves
        a loss by about 1e-4 to 1e-3 relative, in bf16 by about 1e-3 to 1e-2 (the first H200 run of
        benchmarks/gpu_suite.sh saw 1.5e-4 and 3.4e-3, and refused the graph at the tighter 1e-4 / 1e-3 of
        before): hence 2e-3 and 2e-2 on losses.

        The updates (w - w0 after one and two iterations) follow each other closely but for a few weights:
        Adam turns the rounding of a gradient that is about zero into a whole step either way. In fp32 with
        TF32 off only the summation order differs, as between two CPUs, and the golden test's rule holds:
        within a tenth of a step (0.1 lr; + 1e-6 for the spectral norm's unit vectors), all but 1e-3 (each
        within 4.2 lr). TF32 and bf16 round the convolutions' operands or results, so far more gradients are
        "about zero" and each moves its update further: a weight agrees within a quarter of a step plus half
        of its own update, all but 0.25 (TF32) or 0.5 (bf16) of each tensor and of all, each within 8 lr.
        Measured on the CPU with a stand-in replay whose convolutions round like another algorithm
        (benchmarks/graph_check_margins.py: three model sizes, capture after 1 to 3 iterations):
        at most 0.125 (TF32) and 0.19 (bf16) of a tensor, 0.021 of all, 4.9 lr, while its losses moved by up
        to 7e-4 (TF32) and 1.8e-3 (bf16) against the H200's 1.5e-4 and 3.4e-3: bf16 has the wider margin. A
        replay that stopped updating a network leaves all of some tensor behind, 0.18 to 0.63 of all values. (Before,
        each weight had 4.2 lr plus 2e-3 of its value: a replay that skipped the generators' update passed
        that, and in bf16 the losses' 2e-2 too.)"""
        rtol, rule = self.loss_tolerance(), self.update_rule()
        names = list(self.step.model.state_dict())
        device = self.lr.device
        for i, (losses, weights) in enumerate(expected, start=1):
            self.replay()
            if [t.data_ptr() for t in self._state()] != pointers:
                raise GraphMismatch("the iteration moved a weight, buffer or optimiser state to new memory")
            for name, value in losses.items():
                got = self.outputs[name].item()
                if not (
                    math.isclose(got, value, rel_tol=rtol, abs_tol=1e-6) or (math.isnan(got) and math.isnan(value))
                ):
                    raise GraphMismatch(f"replay {i}: {name} = {got}, eager {value} (relative tolerance {rtol:g})")
            # w0 comes back from the host one tensor at a time (the state's first tensors are the weights).
            found = rule.compare(
                (name, got, ref, start.to(device, non_blocking=True))
                for name, got, ref, start in zip(names, self.step.model.state_dict().values(), weights, saved)
            )
            if not found.ok:
                more = f" (and {len(found.problems) - 1} more)" if len(found.problems) > 1 else ""
                raise GraphMismatch(
                    f"replay {i}'s update differs from the eager iteration's: {found.problems[0]}{more}"
                )

    def _state(self) -> list[Tensor]:
        """Every tensor an iteration updates: weights and buffers, then the optimisers' state."""
        tensors = list(self.step.model.state_dict().values())
        for optim in self.step.optimizers():
            for param_state in optim.state.values():
                tensors += [v for v in param_state.values() if isinstance(v, Tensor)]
        return tensors

    def _restore(self, saved: list[Tensor]) -> None:
        with torch.no_grad():
            for tensor, value in zip(self._state(), saved):
                tensor.copy_(value)

    # --- The rest of TrainingStep's interface -----------------------------------------------------------

    def state_dict(self) -> dict:
        """The optimisers' state as the eager step saves it: a number for the learning rate, and no group
        that says it was captured."""
        state = self.step.state_dict()
        for optim_state in state.values():
            for group in optim_state["param_groups"]:
                group["lr"] = float(group["lr"])
                group["capturable"] = False
        return state

    def load_state_dict(self, state: dict) -> None:
        """Whoever saved `state`, the optimisers keep reading this graph's learning-rate tensor (the same
        object, which a captured graph reads), set to the saved rate."""
        self.step.load_state_dict(state)
        for optim in self.step.optimizers():
            for group in optim.param_groups:
                self.lr.fill_(float(group["lr"]))
        self._read_learning_rate_tensor()


def fast_step(
    step: TrainingStep, device: torch.device, *, eager: bool = False, notify: Callable[[str], None] = print
) -> TrainingStep | CapturedStep:
    """The step to train with on `device`: on CUDA (unless `eager`) a CUDA graph, with cuDNN autotuning
    for its eager calls; elsewhere the step itself."""
    if device.type != "cuda" or eager:
        return step
    return CapturedStep(step, CudaGraph(device), notify=notify)


def checks_losses_every_step(runner: TrainingStep | CapturedStep) -> bool:
    """Whether the trainer reads the losses of `runner` (what `fast_step` gave) after every iteration, a
    host sync on a GPU, or only when it logs or saves: every step except through a CUDA graph."""
    return not isinstance(runner, CapturedStep)
