"""The fast path's logic on the CPU: CapturedStep with a stand-in for torch.cuda.graph trains exactly like the
eager step, accepts a replay that rounds like another cuDNN algorithm, and refuses (then continues eagerly,
state intact) a graph that computes something else or leaves a network's update out, an iteration that moves
state to new memory, or a capture that fails. The real CUDA capture is the dozen lines of `fast.CudaGraph`,
run by benchmarks/gpu_suite.sh."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from helpers import tiny
from ugatit.config import OptimConfig
from ugatit.nn.model import UGATIT
from ugatit.training.divergence import LossGuard
from ugatit.training.fast import CapturedStep, checks_losses_every_step, fast_step
from ugatit.training.step import TrainingStep
from ugatit.utils.profiling import count_ops

CONVOLUTIONS = (torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default)


def tf32(t):
    """t's fp32 values rounded to TF32's 10-bit mantissa, as cuDNN reads a convolution's operands in TF32."""
    if not isinstance(t, torch.Tensor) or t.dtype != torch.float32:
        return t
    return ((t.view(torch.int32) + 0x1000) & ~0x1FFF).view(torch.float32)


class AnotherAlgorithm(TorchDispatchMode):
    """Convolutions that round like another cuDNN algorithm than the CPU's eager one: "tf32" rounds their
    operands to TF32 (what an fp32 convolution does on a GPU by default: the eager one here does not, a
    wider gap than between two TF32 algorithms); "exact" sums in float64 and rounds the result to the
    operands' dtype once (a bf16 convolution that accumulates in another order)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func not in CONVOLUTIONS:
            return func(*args, **(kwargs or {}))
        operands = 3 if func is CONVOLUTIONS[1] else 2  # (grad_output,) input, weight
        if self.kind == "tf32":
            return func(*(tf32(a) if i < operands else a for i, a in enumerate(args)), **(kwargs or {}))
        dtype = args[0].dtype
        out = func(*(a.double() if isinstance(a, torch.Tensor) else a for a in args), **(kwargs or {}))
        if isinstance(out, tuple):
            return tuple(o.to(dtype) if isinstance(o, torch.Tensor) else o for o in out)
        return out.to(dtype)


class StandInGraph:
    """torch.cuda.graph's contract on the CPU: a capture executes nothing (the state is put back after
    recording), and each replay runs the recorded iteration, writing into the captured outputs.
    Broken on purpose: `replay_runs=False` (a replay that computes nothing), `fail` (capture fails),
    `skip` ("G_optim" or "D_optim": a replay without that optimiser's step). `rounding` ("tf32" or
    "exact", see AnotherAlgorithm): a faithful replay whose convolutions round otherwise."""

    def __init__(
        self, replay_runs: bool = True, fail: bool = False, skip: str | None = None, rounding: str | None = None
    ):
        self.replay_runs, self.fail, self.skip, self.rounding = replay_runs, fail, skip, rounding
        self.replays = 0

    @contextlib.contextmanager
    def _as_recorded(self):
        with AnotherAlgorithm(self.rounding) if self.rounding else contextlib.nullcontext():
            if self.skip is None:
                yield
                return
            optimizer = getattr(self.owner.step, self.skip)
            optimizer.step = lambda *args, **kwargs: None
            try:
                yield
            finally:
                del optimizer.step

    def prepare(self, step):
        pass

    def warmup(self):
        return contextlib.nullcontext()

    def capture(self, fn):
        if self.fail:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing")
        saved = [t.clone() for t in self.owner._state()]
        outputs = {k: v.clone() for k, v in fn().items()}
        self.owner._restore(saved)

        def replay():
            self.replays += 1
            if self.replay_runs:
                with self._as_recorded():
                    for k, v in fn().items():
                        outputs[k].copy_(v)

        return replay, outputs


def train_both(graph: StandInGraph, steps: int = 6, messages: list | None = None, precision: str = "fp32"):
    """The same steps (lr decaying over the second half) with the plain step and through CapturedStep."""
    cfg = OptimConfig(iterations=steps)
    plain_model, fast_model = tiny(), tiny()
    plain = TrainingStep(plain_model, optim_cfg=cfg, precision=precision)
    fast = CapturedStep(
        TrainingStep(fast_model, optim_cfg=cfg, precision=precision),
        graph,
        warmup=2,
        notify=(messages if messages is not None else []).append,
    )
    graph.owner = fast
    torch.manual_seed(1)
    for step in range(1, steps + 1):
        a, b = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
        expected = {k: v.item() for k, v in plain(a, b, step).items()}
        got = {k: v.item() for k, v in fast(a, b, step).items()}
        assert got == expected, step
    return plain_model, fast_model, fast


def assert_same_state(model_a: UGATIT, model_b: UGATIT) -> None:
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(a, b), name


def test_the_captured_step_trains_exactly_like_the_eager_one():
    graph, messages = StandInGraph(), []
    plain_model, fast_model, fast = train_both(graph, messages=messages)
    assert fast.captured and fast.given_up is None
    assert len(messages) == 1 and "captured as a CUDA graph after 2 eager iterations" in messages[0]
    assert graph.replays == 2 + 4  # the two checked replays, then one per remaining step (3 to 6)
    assert_same_state(plain_model, fast_model)
    # The optimisers' state round-trips as an eager run writes it: a number, not the graph's tensor.
    assert isinstance(fast.state_dict()["G_optim"]["param_groups"][0]["lr"], float)


BROKEN = {
    "replay computes nothing": ({"replay_runs": False}, "update differs"),
    "replay skips the generators' update": ({"skip": "G_optim"}, "update differs"),
    "replay skips the discriminators' update": ({"skip": "D_optim"}, "update differs"),
    "capture fails": ({"fail": True}, "not permitted"),
    "state moved": ({}, "new memory"),
}


@pytest.mark.parametrize(
    "broken, precision",
    [(broken, "fp32") for broken in BROKEN]
    + [(b, "bf16") for b, (_, said) in BROKEN.items() if said == "update differs"],
)
def test_a_wrong_or_failed_graph_is_refused_and_training_continues_eagerly(broken, precision, monkeypatch):
    """bf16 has the loosest update rule (0.5 of each tensor may differ): it still refuses a missing update,
    which leaves all of some tensor behind (on the GPU as well as here: the fault is in the replay, not in its
    rounding). The loss check is switched off for the faults the update rule is for, so
    that it speaks alone (a replay without the D update also changes the G losses)."""
    messages = []
    options, expected = BROKEN[broken]
    if expected == "update differs":
        monkeypatch.setattr(CapturedStep, "loss_tolerance", lambda self: math.inf)
    if broken == "state moved":  # an iteration that rebinds a buffer instead of writing into it
        iterate = TrainingStep.iterate

        def rebinding(self, *args):
            losses = iterate(self, *args)
            layer = self.model.disGA.model[1]
            layer.weight_u = layer.weight_u.clone()
            return losses

        monkeypatch.setattr(TrainingStep, "iterate", rebinding)
    plain_model, fast_model, fast = train_both(StandInGraph(**options), messages=messages, precision=precision)
    assert not fast.captured and len(messages) == 1 and "CUDA graph not used" in messages[0]
    assert expected in messages[0], messages[0]
    assert_same_state(plain_model, fast_model)


def capture_with(graph: StandInGraph, precision: str = "fp32", steps: int = 5) -> tuple[CapturedStep, list[str]]:
    messages = []
    fast = CapturedStep(
        TrainingStep(tiny(), optim_cfg=OptimConfig(iterations=100), precision=precision),
        graph,
        warmup=2,
        notify=messages.append,
    )
    graph.owner = fast
    torch.manual_seed(1)
    for step in range(1, steps + 1):
        fast(torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1, step)
    return fast, messages


@pytest.mark.parametrize("precision, rounding", [("fp32", "tf32"), ("bf16", "exact")])
def test_a_replay_that_rounds_like_another_algorithm_is_accepted(precision, rounding):
    """The check's tolerances let through what a GPU's other convolution algorithm does to the updates:
    measured here, 0.027 (TF32) and 0.016 (bf16) of a tensor at most, where 0.25 and 0.5 may."""
    fast, messages = capture_with(StandInGraph(rounding=rounding), precision)
    assert fast.captured, messages
    assert "two replays checked against eager iterations" in messages[0]


def test_with_tf32_off_the_check_is_the_golden_tests_rule(monkeypatch):
    """fp32 without TF32 differs between two algorithms by the summation order only: the rule is then as
    tight as the golden test's, and a replay that rounds like TF32 is refused."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    fast, messages = capture_with(StandInGraph(rounding="tf32"))
    assert not fast.captured and "update differs" in messages[0], messages
    fast, messages = capture_with(StandInGraph())
    assert fast.captured, messages


def test_the_fast_path_is_only_taken_on_cuda():
    step = TrainingStep(tiny())
    assert fast_step(step, torch.device("cpu")) is step
    assert checks_losses_every_step(fast_step(step, torch.device("cpu")))
    graph = fast_step(step, torch.device("cuda"))
    assert isinstance(graph, CapturedStep) and graph.step is step
    assert not checks_losses_every_step(graph)
    assert fast_step(step, torch.device("cuda"), eager=True) is step
    assert checks_losses_every_step(fast_step(step, torch.device("cuda"), eager=True))


def test_the_eager_step_never_waits_for_the_device():
    """No op of an iteration reads a value back to the host (what would stall the GPU and break a capture):
    no .item(), no data-dependent shapes."""
    step = TrainingStep(tiny())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    step(x, x, 1)
    _, ops = count_ops(lambda: step(x, x, 2))
    assert not {"_local_scalar_dense", "item", "nonzero", "is_nonzero", "equal"} & set(ops.counts)


def test_the_loss_guard_reports_the_first_non_finite_step_when_read():
    guard = LossGuard(every_step=False)
    for step, value in [(1, 1.0), (2, 2.0), (3, math.nan), (4, math.inf), (5, 3.0)]:
        guard.observe(step, {"G_recon_loss_A": torch.tensor(value), "Generator_loss": torch.tensor(step * 1.0)})
    losses, bad_step, bad = guard.read()
    assert losses == {"G_recon_loss_A": 3.0, "Generator_loss": 5.0}
    assert bad_step == 3 and bad == ["G_recon_loss_A=nan"]
    guard = LossGuard()
    guard.observe(1, {"Generator_loss": torch.tensor(1.0)})
    assert guard.read() == ({"Generator_loss": 1.0}, None, [])


def test_losses_observed_are_copies():
    """A captured graph overwrites its loss tensors at the next replay: the guard keeps its own."""
    guard = LossGuard(every_step=False)
    loss = torch.tensor(1.0)
    guard.observe(1, {"Generator_loss": loss})
    loss.fill_(math.nan)
    assert guard.read() == ({"Generator_loss": 1.0}, None, [])


def test_optimiser_state_moves_between_implementations():
    """A state saved by the per-parameter Adam loop (older checkpoints) loads into the fused step, and a
    CUDA graph's (tensor lr, capturable) is saved as an eager run saves it; the numbers carry over."""
    import itertools

    model = tiny()
    old = TrainingStep(model)
    loop = lambda params: torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), weight_decay=1e-4, foreach=False)
    old.G_optim = loop(itertools.chain(model.genA2B.parameters(), model.genB2A.parameters()))
    old.D_optim = loop(itertools.chain(*(getattr(model, n).parameters() for n in ("disGA", "disGB", "disLA", "disLB"))))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    old(x, x, 1)
    fresh = TrainingStep(tiny())
    fresh.load_state_dict(old.state_dict())
    group = fresh.G_optim.param_groups[0]
    assert group["fused"] is True and group["foreach"] is None
    first = next(iter(fresh.G_optim.state.values()))
    assert float(first["step"]) == 1.0 and first["exp_avg"].abs().sum() > 0

    graph = StandInGraph()
    captured = CapturedStep(TrainingStep(tiny()), graph, warmup=1)
    captured.step.G_optim.param_groups[0]["capturable"] = True  # as CudaGraph.prepare sets it
    graph.owner = captured
    captured(x, x, 1)
    saved = captured.state_dict()
    assert saved["G_optim"]["param_groups"][0]["capturable"] is False
    assert isinstance(saved["G_optim"]["param_groups"][0]["lr"], float)
    captured.load_state_dict(saved)  # the graph's lr tensor stays the same object
    assert captured.step.G_optim.param_groups[0]["lr"] is captured.lr
    assert captured.step.G_optim.param_groups[0]["capturable"] is True


@pytest.mark.parametrize("fail", [False, True], ids=["captured", "given up"])
def test_cudnn_autotuning_is_on_for_the_steps_eager_calls_only(fail, monkeypatch):
    """cuDNN benchmarks algorithms during warm-up, capture, the check and an eager fallback, and the setting
    is the program's own again after every call (fast_step used to switch it on for good)."""
    seen = []
    iterate = TrainingStep.iterate

    def recording(self, *args):
        seen.append(torch.backends.cudnn.benchmark)
        return iterate(self, *args)

    monkeypatch.setattr(TrainingStep, "iterate", recording)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    assert fast_step(TrainingStep(tiny()), torch.device("cuda"), notify=print) is not None
    assert torch.backends.cudnn.benchmark is False
    graph = StandInGraph(fail=fail)
    fast = CapturedStep(TrainingStep(tiny()), graph, warmup=2, notify=lambda message: None)
    graph.owner = fast
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    for step in (1, 2, 3):
        fast(x, x, step)
        assert torch.backends.cudnn.benchmark is False
    assert fast.captured is not fail
    # 2 warm-up, 2 eager references, then the capture, 2 checked replays and this call's (or, when the
    # capture fails, this call eagerly)
    assert seen == [True] * (8 if not fail else 5)


class HostCopies(TorchDispatchMode):
    """Bytes copied to the host (on the CPU: every .to("cpu", copy=True))."""

    def __init__(self):
        super().__init__()
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is torch.ops.aten._to_copy.default and str((kwargs or {}).get("device")) == "cpu":
            self.bytes += out.numel() * out.element_size()
        return out


def test_the_check_copies_the_state_to_the_host_once():
    """The state it puts back is all the check copies to the host: weights, buffers and Adam's state (three
    times the weights). The eager iterations' weights stay where they were computed and are compared
    there (before: two more copies of the weights on the host, 13 GB at once for the full model at 256 px)."""
    graph = StandInGraph()
    fast = CapturedStep(TrainingStep(tiny()), graph, warmup=2, notify=lambda message: None)
    graph.owner = fast
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    fast(x, x, 1), fast(x, x, 2)
    state = sum(t.numel() * t.element_size() for t in fast._state())
    weights = sum(t.numel() * t.element_size() for t in fast.step.model.state_dict().values())
    assert 2.8 * weights < state < 3 * weights  # the u, v buffers have no Adam state
    with HostCopies() as copies:
        fast(x, x, 3)
    assert fast.captured and copies.bytes == state
