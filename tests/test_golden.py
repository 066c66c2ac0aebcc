"""Numerical parity with the official PyTorch code: one training iteration from the golden init_params.

Tolerances hold between two correct implementations; docs/faithfulness.md says why each is what it is.
"""

from __future__ import annotations

import pytest
import torch

from ugatit.config import LossConfig, ModelConfig, OptimConfig
from ugatit.nn.model import NETWORK_NAMES, UGATIT
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


def golden_model(golden: dict, which: str = "init_params") -> UGATIT:
    cfg = golden["config"]
    model = UGATIT(ModelConfig(img_size=cfg["img_size"], ch=cfg["ch"], n_res=cfg["n_res"], light=cfg["light"]))
    model.load_official_state_dict(golden[which])
    return model


def golden_step(golden: dict, official: bool) -> tuple[UGATIT, dict]:
    cfg = golden["config"]
    model = golden_model(golden)
    step = TrainingStep(
        model,
        LossConfig(cfg["adv_weight"], cfg["cycle_weight"], cfg["identity_weight"], cfg["cam_weight"]),
        OptimConfig(lr=cfg["lr"], beta1=cfg["betas"][0], beta2=cfg["betas"][1], weight_decay=cfg["weight_decay"]),
        official=official,
    )
    return model, step(golden["real_A"], golden["real_B"], 1)


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

    ours = model.official_state_dict()
    for name in NETWORK_NAMES:
        for key, expected in golden["step1_params"][name].items():
            error = (ours[name][key] - expected).abs().max().item()
            tolerance = 1e-6 if key.endswith(("weight_u", "weight_v")) else 2.1e-4
            assert error <= tolerance, f"{name}.{key}: {error:.3g}"

    # docs/faithfulness.md: eval outputs after our own step hold to 1e-3 for light models; for full ones sign flips
    # in the large FC may move the generator by ~5e-3 of the max (measured here: ~1e-6 on CPU).
    assert max_rel_eval_error(model, golden) < (1e-3 if golden["config"]["light"] else 1e-2)


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
