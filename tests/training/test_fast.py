"""The fast path's logic on the CPU: CapturedStep with a stand-in for torch.cuda.graph trains exactly like the
eager step, and refuses (then continues eagerly, state intact) a graph that computes something else, an
iteration that moves state to new memory, or a capture that fails. The real CUDA capture is the dozen
lines of `fast.CudaGraph`, run by benchmarks/gpu_suite.sh."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from ugatit.config import ModelConfig, OptimConfig
from ugatit.nn.model import UGATIT
from ugatit.training.divergence import LossGuard
from ugatit.training.fast import CapturedStep, checks_losses_every_step, fast_step
from ugatit.training.step import TrainingStep
from ugatit.utils.profiling import count_ops


class StandInGraph:
    """torch.cuda.graph's contract on the CPU: a capture executes nothing (the state is put back after
    recording), and each replay runs the recorded iteration, writing into the captured outputs."""

    def __init__(self, replay_runs: bool = True, fail: bool = False):
        self.replay_runs, self.fail = replay_runs, fail
        self.replays = 0

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
                for k, v in fn().items():
                    outputs[k].copy_(v)

        return replay, outputs


def tiny() -> UGATIT:
    torch.manual_seed(0)
    return UGATIT(ModelConfig(img_size=32, ch=4, n_res=1, light=True))


def train_both(graph: StandInGraph, steps: int = 6, messages: list | None = None):
    """The same steps (lr decaying over the second half) with the plain step and through CapturedStep."""
    cfg = OptimConfig(iterations=steps)
    plain_model, fast_model = tiny(), tiny()
    plain = TrainingStep(plain_model, optim_cfg=cfg)
    fast = CapturedStep(
        TrainingStep(fast_model, optim_cfg=cfg),
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


@pytest.mark.parametrize("broken", ["replay computes nothing", "capture fails", "state moved"])
def test_a_wrong_or_failed_graph_is_refused_and_training_continues_eagerly(broken, monkeypatch):
    messages = []
    if broken == "state moved":  # an iteration that rebinds a buffer instead of writing into it
        iterate = TrainingStep.iterate

        def rebinding(self, *args):
            losses = iterate(self, *args)
            layer = self.model.disGA.model[1]
            layer.weight_u = layer.weight_u.clone()
            return losses

        monkeypatch.setattr(TrainingStep, "iterate", rebinding)
    graph = StandInGraph(replay_runs=broken != "replay computes nothing", fail=broken == "capture fails")
    plain_model, fast_model, fast = train_both(graph, messages=messages)
    assert not fast.captured and len(messages) == 1 and "CUDA graph not used" in messages[0]
    expected = {"replay computes nothing": "differs", "capture fails": "not permitted", "state moved": "new memory"}
    assert expected[broken] in messages[0]
    assert_same_state(plain_model, fast_model)


def test_the_fast_path_is_only_taken_on_cuda():
    step = TrainingStep(tiny())
    assert fast_step(step, torch.device("cpu")) is step
    assert checks_losses_every_step(torch.device("cpu"), eager=False)
    assert not checks_losses_every_step(torch.device("cuda"), eager=False)
    assert checks_losses_every_step(torch.device("cuda"), eager=True)


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
