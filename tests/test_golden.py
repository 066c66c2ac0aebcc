"""Numerical parity with the official PyTorch code: one training iteration from the golden init_params.

Tolerances hold between two correct implementations on any CPU; docs/faithfulness.md says why each is what
it is and what was measured.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ugatit.config import LossConfig, ModelConfig, OptimConfig
from ugatit.nn import layers
from ugatit.nn import losses as loss_terms
from ugatit.nn.model import NETWORK_NAMES, UGATIT
from ugatit.training.parity import FlipRule
from ugatit.training.step import LOSS_NAMES, TrainingStep
from ugatit.weights.official import infer_model_config

# Which real batch each network sees in the golden eval outputs.
EVAL_INPUT = {
    "genA2B": "real_A",
    "disGA": "real_A",
    "disLA": "real_A",
    "genB2A": "real_B",
    "disGB": "real_B",
    "disLB": "real_B",
}

# The weights after the step (lr 1e-4). Adam's first update is about lr x sign(g), so a weight whose gradient
# is about zero may take the other sign when summed in another order (another CPU, another thread count) and
# land 2 lr away: such flips may be up to 1e-3 of the weights (and of each tensor, or one), within 2.1e-4; all
# others agree within 1e-5, a tenth of a step. Measured here (AMD EPYC, torch 2.13, one thread; both steps):
# light 0 of 496,136 weights beyond 1e-5 (largest difference 3.4e-6), full 1 of 790,536 (2.0e-5); with two
# threads full 2 of 790,536. Faults move far more: a network not updated 10% to 90% of the weights, one of the
# eight adversarial terms with the wrong sign 2e-5 to 1.4e-2 (each of the eight refused here, the fewest by
# the share in one tensor: 2 of genB2A.conv1x1's 512 weights where one may flip).
STEP_RULE = FlipRule(atol=1e-5, max_error=2.1e-4, max_share=1e-3)
# Spectral-norm u, v against the power iterations of our own weights, in float64: measured 1.4e-7.
UV_TOLERANCE = 1e-6


def golden_model(golden: dict, which: str = "init_params") -> UGATIT:
    cfg = golden["config"]
    model = UGATIT(ModelConfig(img_size=cfg["img_size"], ch=cfg["ch"], n_res=cfg["n_res"], light=cfg["light"]))
    model.load_official_state_dict(golden[which])
    return model


def golden_step(
    golden: dict, official: bool = False, *, loss: dict | None = None, prepare=None, **options
) -> tuple[UGATIT, dict]:
    """One iteration from the golden init_params. For the broken steps below: `loss` replaces LossConfig
    fields, `prepare(step)` alters the TrainingStep, `options` go to it."""
    cfg = golden["config"]
    model = golden_model(golden)
    weights = LossConfig(cfg["adv_weight"], cfg["cycle_weight"], cfg["identity_weight"], cfg["cam_weight"])
    step = TrainingStep(
        model,
        dataclasses.replace(weights, **(loss or {})),
        OptimConfig(lr=cfg["lr"], beta1=cfg["betas"][0], beta2=cfg["betas"][1], weight_decay=cfg["weight_decay"]),
        official=official,
        **options,
    )
    if prepare is not None:
        prepare(step)
    return model, step(golden["real_A"], golden["real_B"], 1)


def power_iterations(init: dict, after: dict) -> dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]]:
    """u, v of every spectrally normalised layer after the golden iteration, recomputed in float64 from the
    weights it ran with: each discriminator runs one power iteration per call in train mode, twice with the
    initial weights in the D step (real, then fake batch) and once with the updated ones in the G step."""

    def once(weight, u):
        matrix = weight.double().flatten(1)
        v = F.normalize(matrix.t() @ u, dim=0, eps=layers.SN_EPS)
        return F.normalize(matrix @ v, dim=0, eps=layers.SN_EPS), v

    found = {}
    for net in NETWORK_NAMES:
        for key in after[net]:
            if key.endswith("weight_orig"):
                layer = key.removesuffix("weight_orig")
                u, _ = once(init[net][key], init[net][layer + "weight_u"].double())
                u, _ = once(init[net][key], u)
                found[net, layer] = once(after[net][key], u)
    return found


def step_disagreement(ours: dict, golden: dict) -> list[str]:
    """What in our state after one iteration (official layout) disagrees with the official one; empty when
    it agrees. The weights by STEP_RULE; u, v follow the weights they are computed from, so that a weight
    flipped upstream moves them as it moves the official code's, while a wrong power iteration cannot hide."""
    weights = [
        (f"{net}.{key}", ours[net][key], expected)
        for net in NETWORK_NAMES
        for key, expected in golden["step1_params"][net].items()
        if not key.endswith(("weight_u", "weight_v"))
    ]
    problems = STEP_RULE.compare(weights).problems
    for (net, layer), (u, v) in power_iterations(golden["init_params"], ours).items():
        for key, expected in ((layer + "weight_u", u), (layer + "weight_v", v)):
            error = (ours[net][key].double() - expected).abs().max().item()
            if error > UV_TOLERANCE:
                problems.append(f"{net}.{key} is {error:.3g} from the power iteration of its weights")
    return problems


def max_rel_eval_error(model: UGATIT, golden: dict) -> float:
    model.eval()
    worst = 0.0
    with torch.no_grad():
        for name, expected in golden["eval_outputs_after_step1"].items():
            outputs = getattr(model, name)(golden[EVAL_INPUT[name]])
            for (key, ref), got in zip(expected.items(), outputs):
                assert got.shape == ref.shape, (name, key)
                worst = max(worst, ((got - ref).abs().max() / ref.abs().max()).item())
    return worst


def test_state_dict_layout_equals_official(golden):
    model = golden_model(golden)
    for name in NETWORK_NAMES:
        ours = getattr(model, name).state_dict()
        theirs = golden["init_params"][name]
        assert list(ours) == list(theirs), name
        assert all(ours[k].shape == theirs[k].shape for k in ours), name


def test_infer_config_from_official_checkpoint(golden):
    cfg = infer_model_config(golden["init_params"])
    assert (cfg.ch, cfg.n_res, cfg.light) == (4, 2, golden["config"]["light"])
    assert (cfg.n_layers_global, cfg.n_layers_local) == (7, 5)
    if not cfg.light:
        assert cfg.img_size == 96


def test_pytorch_init_reproduces_official_init(golden):
    """Layers are created in the official order, so the same seed draws the same initial weights."""
    cfg = golden["config"]
    torch.manual_seed(cfg["seed"])
    model = UGATIT(ModelConfig(img_size=96, ch=4, n_res=2, light=cfg["light"], init="pytorch"))
    ours = model.official_state_dict()
    for name in NETWORK_NAMES:
        for key, value in golden["init_params"][name].items():
            assert torch.equal(ours[name][key], value), f"{name}.{key}"


def test_forward_equals_official(golden):
    assert max_rel_eval_error(golden_model(golden, "step1_params"), golden) < 1e-5


@pytest.mark.parametrize("official", [True, False], ids=["with-dead-work", "lean"])
def test_one_training_iteration_equals_official(golden, official):
    model, losses = golden_step(golden, official)

    assert set(losses) == set(LOSS_NAMES) == set(golden["step1_losses"])
    for name, expected in golden["step1_losses"].items():
        assert losses[name].item() == pytest.approx(expected, rel=1e-6), name

    assert step_disagreement(model.official_state_dict(), golden) == []

    # docs/faithfulness.md: eval outputs after our own step hold to 1e-3 for light models; for full ones sign flips
    # in the large FC may move the generator by ~5e-3 of the max (measured here: ~1e-6 on CPU).
    assert max_rel_eval_error(model, golden) < (1e-3 if golden["config"]["light"] else 1e-2)


def test_the_power_iterations_recomputed_give_the_official_u_v(golden):
    """The u, v reference of step_disagreement, fed the official weights, gives the official u, v: it
    models the official code's power iterations (measured 1.4e-7)."""
    for (net, layer), (u, v) in power_iterations(golden["init_params"], golden["step1_params"]).items():
        official = golden["step1_params"][net]
        assert (official[layer + "weight_u"].double() - u).abs().max() < UV_TOLERANCE, (net, layer)
        assert (official[layer + "weight_v"].double() - v).abs().max() < UV_TOLERANCE, (net, layer)


def flip_near_zero_gradients(params) -> None:
    """Another CPU, summing in another order: in each tensor of 1,000 weights or more, the smallest gradient
    above 1e-6 takes the other sign, so that Adam moves that weight by 2 lr the other way."""
    for p in params:
        if p.grad is not None and p.numel() >= 1000:
            magnitude = p.grad.abs().flatten()
            p.grad.view(-1)[torch.where(magnitude > 1e-6, magnitude, torch.inf).argmin()] *= -1


def test_flipped_near_zero_gradients_pass_the_step_check(golden):
    """What another CPU may do is allowed: a few whole-step flips, and u, v moved by them (which the old
    check, u and v within 1e-6 of the official ones, refused: here they move by ~3e-4)."""
    model, _ = golden_step(golden, average_gradients=flip_near_zero_gradients)
    ours = model.official_state_dict()
    weights = [(k, ours[n][k], v) for n in NETWORK_NAMES for k, v in golden["step1_params"][n].items()]
    found = STEP_RULE.compare([w for w in weights if not w[0].endswith(("weight_u", "weight_v"))])
    assert found.off >= 10 and found.worst > 1.5e-4  # flips happened (20 light, 28 full: 2 lr each)
    assert max((got - want).abs().max().item() for key, got, want in weights if key.endswith(("_u", "_v"))) > 1e-5
    assert step_disagreement(ours, golden) == []


def _no_update(step: TrainingStep, which: str) -> None:
    getattr(step, which).step = lambda *args, **kwargs: None


def _one_adversarial_term_negated(monkeypatch) -> None:
    """G_ad_cam_loss_LB with the wrong sign: the eighth lsgan_fool of the G step (GA, LA, GB, LB; logit,
    then CAM). The weakest fault here: it moves 1.1% (light) and 1.4% (full) of the weights."""
    fool, calls = loss_terms.lsgan_fool, []

    def negated_eighth(logit):
        calls.append(1)
        return -fool(logit) if len(calls) == 8 else fool(logit)

    monkeypatch.setattr(loss_terms, "lsgan_fool", negated_eighth)


def _stale_power_iteration(monkeypatch) -> None:
    """u, v computed but not written back: every call starts again from the initial vectors."""
    iterate = layers.power_iteration

    def stale(modules):
        kept = [(m.weight_u.clone(), m.weight_v.clone()) for m in modules]
        result = iterate(modules)
        for m, (u, v) in zip(modules, kept):
            m.weight_u.copy_(u), m.weight_v.copy_(v)
        return result

    monkeypatch.setattr(layers, "power_iteration", stale)


def _power_iteration_u_first(monkeypatch) -> None:
    """u from the old v, then v from that u: the two halves of the iteration in the wrong order."""

    @torch.no_grad()
    def swapped(modules):
        us, vs, sigmas = [], [], []
        for m in modules:
            matrix = m.weight_orig.flatten(1)
            u = F.normalize(matrix @ m.weight_v, dim=0, eps=layers.SN_EPS)
            v = F.normalize(matrix.t() @ u, dim=0, eps=layers.SN_EPS)
            m.weight_u.copy_(u), m.weight_v.copy_(v)
            us.append(u), vs.append(v), sigmas.append(torch.dot(u, matrix @ v))
        return us, vs, sigmas

    monkeypatch.setattr(layers, "power_iteration", swapped)


BROKEN_STEPS = {
    "generators not updated": ({"prepare": lambda step: _no_update(step, "G_optim")}, "differ by more"),
    "discriminators not updated": ({"prepare": lambda step: _no_update(step, "D_optim")}, "differ by more"),
    "identity loss with the wrong sign": ({"loss": {"identity_weight": -10.0}}, "differ by more"),
    "one adversarial term with the wrong sign": ({"monkeypatch": _one_adversarial_term_negated}, "differ by more"),
    "power iteration not written back": ({"monkeypatch": _stale_power_iteration}, "power iteration of its weights"),
    "power iteration halves swapped": ({"monkeypatch": _power_iteration_u_first}, "power iteration of its weights"),
}


@pytest.mark.parametrize("broken", list(BROKEN_STEPS))
def test_the_step_check_refuses_a_broken_step(golden, broken, monkeypatch):
    """Each fault makes step_disagreement speak, although every weight stays within 2.1e-4 of the official
    one (the whole of the old check, which passed all of them but the power iterations)."""
    options, expected = BROKEN_STEPS[broken]
    options = dict(options)
    if "monkeypatch" in options:
        options.pop("monkeypatch")(monkeypatch)
    model, _ = golden_step(golden, **options)
    ours = model.official_state_dict()
    problems = step_disagreement(ours, golden)
    assert problems and expected in " ".join(problems), problems
    weights = [
        (key, ours[net][key], expected)
        for net in NETWORK_NAMES
        for key, expected in golden["step1_params"][net].items()
        if not key.endswith(("weight_u", "weight_v"))
    ]
    assert STEP_RULE.compare(weights).worst <= 2.1e-4


def test_lean_and_official_steps_agree_over_several_iterations(golden):
    """Beyond the first step: three iterations with and without the dead work end at the same weights."""
    results = []
    for official in (True, False):
        model = golden_model(golden)
        step = TrainingStep(model, official=official)
        for i in range(1, 4):
            losses = step(golden["real_A"], golden["real_B"], i)
        results.append((model.official_state_dict(), losses))
    (sd_a, loss_a), (sd_b, loss_b) = results
    for name in LOSS_NAMES:
        assert loss_a[name].item() == pytest.approx(loss_b[name].item(), rel=1e-4), name
    for net in NETWORK_NAMES:
        for key in sd_a[net]:
            assert (sd_a[net][key] - sd_b[net][key]).abs().max() <= 6.3e-4, f"{net}.{key}"
