"""One U-GAT-IT training iteration and the learning-rate schedule.

`TrainingStep.__call__` is the official iteration: a discriminator update, a generator update with the
updated discriminators, then rho clamped to [0, 1]. It skips the official loop's dead work while every
update stays the same:

- the D step sees detached fakes: the official code back-propagates the D loss into both generators,
  then throws those gradients away (G's zero_grad) before they are used;
- the discriminators are frozen in the G step: the official code computes their weight gradients and
  throws them away at the next D step's zero_grad;
- the fakes of the D step are reused in the G step: the generator weights have not changed in between,
  so the official second forward of genA2B(real_A) and genB2A(real_B) recomputes the same tensors;
- the identity terms genB2A(real_A), genA2B(real_B) join that first forward as one batch with it
  (genA2B(real_A ++ real_B), genB2A(real_A ++ real_B)): the generator weights are the same and every
  normalisation is per sample, so each half of the batch is what a call on it alone computes. Six
  generator calls become four.

`official=True` keeps all of it, for the benchmark's naive baseline and for tests that prove both paths
equal the official golden step.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterable, Iterator
from functools import reduce
from itertools import chain

import torch
from torch import Tensor, nn

from ..config import LossConfig, ModelConfig, OptimConfig
from ..nn import losses
from ..nn.model import DISCRIMINATORS, UGATIT

LOSS_NAMES = (
    "D_ad_loss_GA",
    "D_ad_cam_loss_GA",
    "D_ad_loss_LA",
    "D_ad_cam_loss_LA",
    "D_ad_loss_GB",
    "D_ad_cam_loss_GB",
    "D_ad_loss_LB",
    "D_ad_cam_loss_LB",
    "G_ad_loss_GA",
    "G_ad_cam_loss_GA",
    "G_ad_loss_LA",
    "G_ad_cam_loss_LA",
    "G_ad_loss_GB",
    "G_ad_cam_loss_GB",
    "G_ad_loss_LB",
    "G_ad_cam_loss_LB",
    "G_recon_loss_A",
    "G_recon_loss_B",
    "G_identity_loss_A",
    "G_identity_loss_B",
    "G_cam_loss_A",
    "G_cam_loss_B",
    "Discriminator_loss",
    "Generator_loss",
)


def loss_names(model: ModelConfig) -> tuple[str, ...]:
    """The loss terms a model of this config trains with, in `LOSS_NAMES` order: an ablation without the
    CAM of the discriminators has no `*_ad_cam_loss_*`, one without the generators' CAM no `G_cam_loss_*`."""
    absent = ("_ad_cam_loss_",) * (not model.d_cam) + ("G_cam_loss_",) * (not model.g_cam)
    return tuple(name for name in LOSS_NAMES if not any(part in name for part in absent))


def _total(terms: Iterable[Tensor | None]) -> Tensor:
    """The sum of the terms present, left to right (the official expression's order, so the paper's model
    sums bit for bit as the official code does)."""
    return reduce(operator.add, (t for t in terms if t is not None))


def _halves(t: Tensor | None, n: int) -> tuple[Tensor | None, Tensor | None]:
    return (None, None) if t is None else tuple(t.split(n))


def learning_rate(step: int, cfg: OptimConfig) -> float:
    """lr at 1-based iteration `step`: constant for the first half, then linear decay reaching 0 at the
    last iteration. The official loop subtracts lr / (N/2) once per step; this is its closed form."""
    half = cfg.iterations // 2
    if not cfg.decay or step <= half or half == 0:
        return cfg.lr
    return max(cfg.lr * (1.0 - (step - half) / half), 0.0)


def rho_parameters(*models: nn.Module) -> list[nn.Parameter]:
    """Every AdaLIN/ILN rho of the given networks."""
    found = (getattr(module, "rho", None) for model in models for module in model.modules())
    return [rho for rho in found if isinstance(rho, nn.Parameter)]


@torch.no_grad()
def clamp_rho(*models: nn.Module) -> None:
    """The official RhoClipper: every AdaLIN/ILN rho back into [0, 1] after a generator update (two
    foreach ops for all of them)."""
    rhos = rho_parameters(*models)
    if rhos:
        torch._foreach_clamp_min_(rhos, 0.0)
        torch._foreach_clamp_max_(rhos, 1.0)


def adam(params, cfg: OptimConfig) -> torch.optim.Adam:
    """Adam with coupled L2 weight decay, as the official code; the fused kernel (one op for every
    parameter) where torch has one for the parameters' device, else the foreach one. The same update
    as the official per-parameter loop, to rounding."""
    params = list(params)
    device = params[0].device.type if params else "cpu"
    kind = {"fused": True} if device in ("cpu", "cuda") else {"foreach": True}
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay, **kind)


@contextlib.contextmanager
def frozen(modules: list[nn.Module]) -> Iterator[None]:
    """Gradients flow through these modules to their inputs but not into their weights."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class TrainingStep:
    """Owns the two Adam optimisers (coupled L2 weight decay, as the official PyTorch code) and runs
    iterations on a UGATIT model. Call it with a pair of unpaired batches and the 1-based step number;
    it returns every loss term under the official names, as detached fp32 scalars."""

    def __init__(
        self,
        model: UGATIT,
        loss_cfg: LossConfig | None = None,
        optim_cfg: OptimConfig | None = None,
        *,
        precision: str = "fp32",
        channels_last: bool = False,
        official: bool = False,
        average_gradients: Callable[[Iterable[nn.Parameter]], None] | None = None,
    ):
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
        self.model = model
        self.w = loss_cfg or LossConfig()
        self.optim_cfg = optim_cfg or OptimConfig()
        self.precision = precision
        self.channels_last = channels_last
        self.official = official
        # Distributed training: replaces each gradient by its mean over the processes before a step.
        self.average_gradients = average_gradients
        self.autocast_cache = True
        # ugatit.utils.profiling.PhaseClock for `ugatit bench`'s time per phase (it waits for the device).
        self.phase_clock = None
        self.G_optim = adam(chain(model.genA2B.parameters(), model.genB2A.parameters()), self.optim_cfg)
        self.D_optim = adam(chain(*(getattr(model, n).parameters() for n in DISCRIMINATORS)), self.optim_cfg)

    # --- The iteration --------------------------------------------------------------------------------

    def __call__(self, real_A: Tensor, real_B: Tensor, step: int) -> dict[str, Tensor]:
        self.set_learning_rate(step)
        return self.iterate(self._layout(real_A), self._layout(real_B))

    def iterate(self, real_A: Tensor, real_B: Tensor) -> dict[str, Tensor]:
        """The iteration at the learning rate already set: D update, G update, rho clamp. It reads and
        writes no Python state that changes between iterations and never waits for the device, so
        that it can be captured once as a CUDA graph and replayed (training/fast.py)."""
        m = self.model

        if self.official:
            with self._phase("G forward"), self._autocast(real_A):
                fake_A2B, cam_A2B, _ = m.genA2B(real_A)
                fake_B2A, cam_B2A, _ = m.genB2A(real_B)
            with self._phase("D step"):
                d_losses = self.update_discriminators(real_A, real_B, fake_A2B, fake_B2A)
            with self._phase("G forward"), self._autocast(real_A):  # the official second forward, identical values
                fake_A2B, cam_A2B, _ = m.genA2B(real_A)
                fake_B2A, cam_B2A, _ = m.genB2A(real_B)
            with self._phase("G step"):
                g_losses = self.update_generators(real_A, real_B, fake_A2B, cam_A2B, fake_B2A, cam_B2A)
        else:
            n = real_A.shape[0]
            with self._phase("G forward"), self._autocast(real_A):  # translations and identities, one batch each
                both = torch.cat([real_A, real_B])
                images, cams, _ = m.genA2B(both)
                (fake_A2B, fake_B2B), (cam_A2B, cam_B2B) = images.split(n), _halves(cams, n)
                images, cams, _ = m.genB2A(both)
                (fake_A2A, fake_B2A), (cam_A2A, cam_B2A) = images.split(n), _halves(cams, n)
            with self._phase("D step"):
                d_losses = self.update_discriminators(real_A, real_B, fake_A2B.detach(), fake_B2A.detach())
            with self._phase("G step"), frozen(m.discriminators()):
                g_losses = self.update_generators(
                    real_A,
                    real_B,
                    fake_A2B,
                    cam_A2B,
                    fake_B2A,
                    cam_B2A,
                    identity=(fake_A2A, cam_A2A, fake_B2B, cam_B2B),
                )

        with self._phase("optimiser"):
            clamp_rho(m.genA2B, m.genB2A)
        return {**d_losses, **g_losses}

    def update_discriminators(
        self, real_A: Tensor, real_B: Tensor, fake_A2B: Tensor, fake_B2A: Tensor
    ) -> dict[str, Tensor]:
        """LSGAN on patch and CAM logits of all four discriminators (patch logits only without their
        CAM); one Adam step.

        Each discriminator is called on the real batch, then on the fake one: with one power iteration
        per call, the spectral norm's u/v and the gradients depend on that order."""
        m, w = self.model, self.w
        L: dict[str, Tensor] = {}
        with self._autocast(real_A):
            for tag, disc, real, fake in (
                ("GA", m.disGA, real_A, fake_B2A),
                ("LA", m.disLA, real_A, fake_B2A),
                ("GB", m.disGB, real_B, fake_A2B),
                ("LB", m.disLB, real_B, fake_A2B),
            ):
                real_logit, real_cam, _ = disc(real)
                fake_logit, fake_cam, _ = disc(fake)
                L[f"D_ad_loss_{tag}"] = losses.lsgan_real_fake(real_logit, fake_logit)
                if real_cam is not None:
                    L[f"D_ad_cam_loss_{tag}"] = losses.lsgan_real_fake(real_cam, fake_cam)

        D_loss_A = w.adv_weight * _total(
            L.get(k) for k in ("D_ad_loss_GA", "D_ad_cam_loss_GA", "D_ad_loss_LA", "D_ad_cam_loss_LA")
        )
        D_loss_B = w.adv_weight * _total(
            L.get(k) for k in ("D_ad_loss_GB", "D_ad_cam_loss_GB", "D_ad_loss_LB", "D_ad_cam_loss_LB")
        )
        L["Discriminator_loss"] = D_loss_A + D_loss_B
        return self._descend(self.D_optim, L, "Discriminator_loss")

    def update_generators(
        self,
        real_A: Tensor,
        real_B: Tensor,
        fake_A2B: Tensor,
        cam_A2B: Tensor,
        fake_B2A: Tensor,
        cam_B2A: Tensor,
        identity: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Adversarial (against the just-updated discriminators), cycle, identity and CAM losses; one Adam
        step. The fakes and their cam logits come from the generators' forward on the real batches;
        `identity` is (genB2A(real_A), its cam logit, genA2B(real_B), its cam logit) when that forward
        computed them too, else they are computed here (the official order)."""
        m, w = self.model, self.w
        L: dict[str, Tensor] = {}
        with self._autocast(real_A):
            fake_A2B2A, _, _ = m.genB2A(fake_A2B)
            fake_B2A2B, _, _ = m.genA2B(fake_B2A)
            if identity is None:
                fake_A2A, cam_A2A, _ = m.genB2A(real_A)
                fake_B2B, cam_B2B, _ = m.genA2B(real_B)
            else:
                fake_A2A, cam_A2A, fake_B2B, cam_B2B = identity

            for tag, disc, fake in (
                ("GA", m.disGA, fake_B2A),
                ("LA", m.disLA, fake_B2A),
                ("GB", m.disGB, fake_A2B),
                ("LB", m.disLB, fake_A2B),
            ):
                fake_logit, fake_cam, _ = disc(fake)
                L[f"G_ad_loss_{tag}"] = losses.lsgan_fool(fake_logit)
                if fake_cam is not None:
                    L[f"G_ad_cam_loss_{tag}"] = losses.lsgan_fool(fake_cam)

        L["G_recon_loss_A"] = losses.l1(fake_A2B2A, real_A)
        L["G_recon_loss_B"] = losses.l1(fake_B2A2B, real_B)
        L["G_identity_loss_A"] = losses.l1(fake_A2A, real_A)
        L["G_identity_loss_B"] = losses.l1(fake_B2B, real_B)
        if cam_A2B is not None:  # generators with their CAM (all but the ablations without)
            L["G_cam_loss_A"] = losses.generator_cam(cam_B2A, cam_A2A)
            L["G_cam_loss_B"] = losses.generator_cam(cam_A2B, cam_B2B)

        G_loss_A, G_loss_B = (
            _total(
                (
                    w.adv_weight
                    * _total(L.get(f"G_ad{kind}_loss_{scale}{d}") for scale in "GL" for kind in ("", "_cam")),
                    w.cycle_weight * L[f"G_recon_loss_{d}"],
                    w.identity_weight * L[f"G_identity_loss_{d}"],
                    w.cam_weight * L[f"G_cam_loss_{d}"] if f"G_cam_loss_{d}" in L else None,
                )
            )
            for d in "AB"
        )
        L["Generator_loss"] = G_loss_A + G_loss_B
        return self._descend(self.G_optim, L, "Generator_loss")

    def _descend(self, optimizer: torch.optim.Optimizer, L: dict[str, Tensor], total: str) -> dict[str, Tensor]:
        """One Adam step down `L[total]`: gradients from it alone (averaged over the processes when
        distributed); returns the loss terms, detached."""
        optimizer.zero_grad(set_to_none=True)
        L[total].backward()
        if self.average_gradients is not None:
            self.average_gradients(p for group in optimizer.param_groups for p in group["params"])
        with self._phase("optimiser"):
            optimizer.step()
        return {k: v.detach() for k, v in L.items()}

    # --- Plumbing -------------------------------------------------------------------------------------

    def optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        return self.G_optim, self.D_optim

    def set_learning_rate(self, step: int) -> float:
        """The scheduled rate on both optimisers."""
        lr = learning_rate(step, self.optim_cfg)
        for optim in self.optimizers():
            for group in optim.param_groups:
                group["lr"] = lr
        return lr

    def _autocast(self, like: Tensor):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        # No cast cache under a CUDA graph capture: cached casts would outlive the graph's memory.
        return torch.autocast(like.device.type, dtype=torch.bfloat16, cache_enabled=self.autocast_cache)

    def _phase(self, name: str):
        return self.phase_clock(name) if self.phase_clock is not None else contextlib.nullcontext()

    def _layout(self, x: Tensor) -> Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def state_dict(self) -> dict:
        """Both optimisers' states."""
        return {"G_optim": self.G_optim.state_dict(), "D_optim": self.D_optim.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore both optimisers. How they run stays this step's (fused or foreach, capturable): only the
        numbers come from `state`, whichever implementation wrote it (Adam then puts each state on the
        device its implementation needs)."""
        for name, optim in zip(("G_optim", "D_optim"), self.optimizers()):
            saved = {
                **state[name],
                "param_groups": [
                    {**group, **{k: current[k] for k in _IMPLEMENTATION if k in current}}
                    for group, current in zip(state[name]["param_groups"], optim.param_groups)
                ],
            }
            optim.load_state_dict(saved)
            for group in optim.param_groups:
                # Adam's settings are this step's config, not the saved ones: the same unless a resume
                # overrides them (the lr is set at every step anyway).
                group.update(
                    betas=(self.optim_cfg.beta1, self.optim_cfg.beta2), weight_decay=self.optim_cfg.weight_decay
                )


_IMPLEMENTATION = ("fused", "foreach", "capturable")


def prepare_model(model: UGATIT, *, channels_last: bool = False, compile: bool = False) -> UGATIT:
    """Memory layout and torch.compile for the six networks, in place. Compiling each network (not the
    step) keeps parameter names and the state-dict layout unchanged."""
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compile:
        for net in model.children():
            net.compile()
    return model
