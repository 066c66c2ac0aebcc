"""The paper's ablations as networks: what each variant has and lacks, the normalisations it uses, and
that the default is the official model untouched (tests/nn/test_networks.py checks its layout against
the official schema; tests/test_golden.py its maths)."""

from __future__ import annotations

import re

import pytest
import torch

from ugatit.config import ABLATIONS, ModelConfig, ablation, ablation_name
from ugatit.errors import UserError
from ugatit.nn.introspect import RESIDUAL, UPSAMPLING, describe_ablation, parameter_counts, rho_layers
from ugatit.nn.layers import AdaIN, AdaLIN, AffineNorm, gn_groups, group_normalize, layer_instance_norm
from ugatit.nn.model import UGATIT
from ugatit.nn.sizes import check_model_config

SMALL = ModelConfig(img_size=32, ch=4, n_res=2, light=True)


def build(name: str, cfg: ModelConfig = SMALL) -> UGATIT:
    torch.manual_seed(0)
    return UGATIT(ablation(cfg, name))


def keys(model: UGATIT, network: str) -> set[str]:
    return set(getattr(model, network).state_dict())


def test_the_default_is_the_full_model_and_names_round_trip():
    assert ablation(ModelConfig(), "full") == ModelConfig()
    for name in ABLATIONS:
        assert ablation_name(ablation(ModelConfig(), name)) == name
    assert ablation_name(ablation(ModelConfig(), "no-cam+ln")) == "no-cam+ln"
    assert describe_ablation(ModelConfig()) == []
    # Building through the switches gives the same state dict, key for key and value for value.
    torch.manual_seed(0)
    plain = UGATIT(SMALL).official_state_dict()
    switched = build("full").official_state_dict()
    for net in plain:
        assert plain[net].keys() == switched[net].keys()
        assert all(torch.equal(plain[net][k], switched[net][k]) for k in plain[net])


def test_unknown_or_conflicting_variants_are_refused():
    with pytest.raises(UserError, match="unknown model variant 'no-attention'"):
        ablation(ModelConfig(), "no-attention")
    with pytest.raises(UserError, match=re.escape("sets `model.decoder_norm` twice")):
        ablation(ModelConfig(), "in+ln")
    with pytest.raises(UserError, match="decoder_norm"):
        check_model_config(ModelConfig(decoder_norm="bn"))
    with pytest.raises(UserError, match="not of the tf variant"):
        check_model_config(ModelConfig(variant="tf", g_cam=False))


@pytest.mark.parametrize("name", ["no-g-cam", "no-cam"])
def test_a_generator_without_cam_has_no_classifier_and_returns_no_attention(name):
    model, full = build(name), build("full")
    gone = keys(full, "genA2B") - keys(model, "genA2B")
    assert gone == {"gap_fc.weight", "gmp_fc.weight", "conv1x1.weight", "conv1x1.bias"}
    assert keys(model, "genA2B") < keys(full, "genA2B")
    image, cam_logit, heatmap = model.genA2B(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert image.shape == (2, 3, 32, 32) and cam_logit is None and heatmap is None
    dim = 4 * SMALL.ch  # the bottleneck's channels: 2 dim (classifier) + 2 dim^2 + dim (conv1x1)
    assert parameter_counts(full)["genA2B"] - parameter_counts(model)["genA2B"] == 2 * dim * dim + 3 * dim


@pytest.mark.parametrize("name", ["no-d-cam", "no-cam"])
def test_a_discriminator_without_cam_has_no_classifier_and_returns_no_attention(name):
    model, full = build(name), build("full")
    for net in ("disGA", "disLB"):
        gone = keys(full, net) - keys(model, net)
        assert {k.split(".")[0] for k in gone} == {"gap_fc", "gmp_fc", "conv1x1"}
        logits, cam_logit, heatmap = getattr(model, net)(torch.rand(2, 3, 32, 32) * 2 - 1)
        assert logits.shape == getattr(full, net)(torch.rand(2, 3, 32, 32))[0].shape
        assert cam_logit is None and heatmap is None
        channels = getattr(model, net).conv.weight_orig.shape[1]
        difference = parameter_counts(full)[net] - parameter_counts(model)[net]
        assert difference == 2 * channels * channels + 3 * channels


def decoder_norm_types(model: UGATIT) -> tuple[set[type], set[type]]:
    gen = model.genA2B
    residual = {type(m) for i in range(gen.n_res) for m in (getattr(gen, f"UpBlock1_{i + 1}").norm1,)}
    upsampling = {type(m) for m in gen.UpBlock2 if "Norm" in type(m).__name__ or type(m).__name__ == "ILN"}
    return residual, upsampling


@pytest.mark.parametrize(
    "name, residual, upsampling, adaptive, rho",
    [
        ("full", "AdaLIN", "ILN", True, True),
        ("adain", "AdaIN", "AffineNorm", True, False),
        ("lin", "ILN", "ILN", False, True),
        ("in", "AffineNorm", "AffineNorm", False, False),
        ("ln", "AffineNorm", "AffineNorm", False, False),
        ("gn", "AffineNorm", "AffineNorm", False, False),
    ],
)
def test_each_decoder_normalisation_is_built_as_the_docs_say(name, residual, upsampling, adaptive, rho):
    model = build(name)
    res, up = decoder_norm_types(model)
    assert {t.__name__ for t in res} == {residual} and {t.__name__ for t in up} == {upsampling}
    gen_keys = keys(model, "genA2B")
    assert any(k.startswith("FC.") for k in gen_keys) is adaptive  # the gamma/beta MLP
    assert ("gamma.weight" in gen_keys) is adaptive
    assert bool(rho_layers(model)) is rho
    if name in ("in", "ln", "gn"):
        kinds = {m.kind for m in model.genA2B.modules() if isinstance(m, AffineNorm)}
        assert kinds == {name}
    if name == "lin":  # AdaLIN's starting rho in the residual blocks, ILN's in the up-sampling ones
        layers = rho_layers(model)
        assert all(float(layer.values.mean()) == pytest.approx(0.9) for layer in layers if layer.position == RESIDUAL)
        assert all(float(layer.values.mean()) == 0.0 for layer in layers if layer.position == UPSAMPLING)


def test_instance_and_layer_norm_are_adalin_with_rho_held_at_one_and_zero():
    """`in` and `ln` use the official unbiased variance: they are the layer-instance mix at rho 1 and 0
    exactly (float64, so the comparison tests the formula, not rounding)."""
    torch.manual_seed(1)
    x = torch.randn(3, 6, 5, 7, dtype=torch.float64)
    gamma, beta = torch.randn(1, 6, dtype=torch.float64), torch.randn(1, 6, dtype=torch.float64)
    for kind, rho in (("in", 1.0), ("ln", 0.0)):
        norm = AffineNorm(6, kind).double()
        with torch.no_grad():
            norm.gamma.copy_(gamma.view(1, 6, 1, 1))
            norm.beta.copy_(beta.view(1, 6, 1, 1))
            expected = layer_instance_norm(x, torch.full((1, 6, 1, 1), rho, dtype=torch.float64), gamma, beta, 1e-5)
            assert torch.allclose(norm(x), expected, rtol=0, atol=1e-12)
    # AdaIN is AdaLIN with rho at 1, with the per-sample gamma/beta of the MLP.
    gamma_n, beta_n = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    adalin = AdaLIN(6).double()
    with torch.no_grad():
        adalin.rho.fill_(1.0)
        assert torch.allclose(AdaIN(6)(x, gamma_n, beta_n), adalin(x, gamma_n, beta_n), rtol=0, atol=1e-12)


def test_group_norm_groups_and_unbiased_statistics():
    assert [gn_groups(c) for c in (256, 128, 64, 32, 16, 8, 4, 2, 6, 5)] == [32, 32, 32, 16, 8, 4, 2, 1, 2, 1]
    x = torch.randn(2, 8, 4, 3, dtype=torch.float64)
    groups = x.view(2, 4, 2 * 4 * 3)  # 4 groups of 2 channels
    var, mean = torch.var_mean(groups, dim=2, keepdim=True)  # unbiased, as torch.var
    expected = ((groups - mean) / torch.sqrt(var + 1e-5)).view_as(x)
    assert torch.allclose(group_normalize(x, 4, 1e-5), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_every_variant_runs_under_bf16_autocast_with_fp32_statistics(name):
    model = build(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        image, _, _ = model.genA2B(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert torch.isfinite(image).all()
