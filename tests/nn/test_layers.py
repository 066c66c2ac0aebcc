"""The rewritten layers against the plain formulas of the official code, in float64: values and gradients
(input, rho, gamma, beta, weights), and the spectral norm's u, v against torch's own spectral_norm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ugatit.nn import layers
from ugatit.nn.layers import ILN, AdaLIN, InstanceNorm, SNConv2d, SNLinear, layer_instance_norm, spectral_weights

f64 = torch.float64


def plain_lin(x, rho, gamma, beta, eps=1e-5):
    """The official AdaLIN/ILN forward, op for op (torch.var: unbiased)."""
    in_mean, in_var = torch.mean(x, dim=[2, 3], keepdim=True), torch.var(x, dim=[2, 3], keepdim=True)
    out_in = (x - in_mean) / torch.sqrt(in_var + eps)
    ln_mean, ln_var = torch.mean(x, dim=[1, 2, 3], keepdim=True), torch.var(x, dim=[1, 2, 3], keepdim=True)
    out_ln = (x - ln_mean) / torch.sqrt(ln_var + eps)
    out = rho.expand(x.shape[0], -1, -1, -1) * out_in + (1 - rho.expand(x.shape[0], -1, -1, -1)) * out_ln
    return out * gamma.reshape(gamma.shape[0], -1, 1, 1) + beta.reshape(beta.shape[0], -1, 1, 1)


def values_and_grads(fn, inputs, upstream):
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    grads = torch.autograd.grad(out, inputs, upstream)
    return out.detach(), grads


def assert_close(ours, ref, what):
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("per_sample", [True, False], ids=["adalin-gamma-per-sample", "iln-gamma-per-channel"])
def test_layer_instance_norm_equals_the_official_formula(per_sample):
    torch.manual_seed(0)
    n, c = 3, 5
    x = torch.randn(n, c, 6, 7, dtype=f64) * 3 + torch.randn(n, c, 1, 1, dtype=f64)  # channel means differ
    rho = torch.tensor([0.0, 0.3, 0.5, 0.9, 1.0], dtype=f64).view(1, c, 1, 1)  # the clamp's ends included
    rows = n if per_sample else 1
    gamma, beta = torch.randn(rows, c, dtype=f64), torch.randn(rows, c, dtype=f64)
    upstream = torch.randn(n, c, 6, 7, dtype=f64)

    ours = values_and_grads(lambda *t: layer_instance_norm(*t, eps=1e-5), [x, rho, gamma, beta], upstream)
    ref = values_and_grads(plain_lin, [x, rho, gamma, beta], upstream)
    assert_close(ours[0], ref[0], "output")
    for name, g, r in zip(["x", "rho", "gamma", "beta"], ours[1], ref[1]):
        assert_close(g, r, f"d/d{name}")


def test_adalin_and_iln_modules_use_the_formula():
    torch.manual_seed(1)
    x = torch.randn(2, 4, 5, 5, dtype=f64)
    ada = AdaLIN(4).double()
    gamma, beta = torch.randn(2, 4, dtype=f64), torch.randn(2, 4, dtype=f64)
    assert_close(ada(x, gamma, beta), plain_lin(x, ada.rho, gamma, beta), "AdaLIN")
    iln = ILN(4).double()
    with torch.no_grad():
        iln.rho.uniform_(0, 1), iln.gamma.normal_(), iln.beta.normal_()
    assert_close(iln(x), plain_lin(x, iln.rho, iln.gamma.view(1, 4), iln.beta.view(1, 4)), "ILN")


def test_instance_norm_equals_the_official_one():
    """The encoder's norm is nn.InstanceNorm2d (biased variance, no affine): values and input gradients."""
    torch.manual_seed(2)
    x = torch.randn(2, 3, 8, 8, dtype=f64) * 2 + 1
    upstream = torch.randn_like(x)
    ours = values_and_grads(InstanceNorm(), [x], upstream)
    ref = values_and_grads(torch.nn.InstanceNorm2d(3), [x], upstream)
    assert_close(ours[0], ref[0], "output")
    assert_close(ours[1][0], ref[1][0], "d/dx")


def test_norms_read_bf16_without_losing_the_statistics():
    """A bf16 input (the output of a bf16 convolution) is normalised with fp32 statistics: the result is the
    fp64 formula applied to the same bf16 values, to within bf16 rounding of the output. Statistics summed in
    bf16 would be off by far more (a large mean over 4096 values)."""
    torch.manual_seed(3)
    x = (torch.randn(1, 8, 64, 64) * 0.5 + 20).bfloat16()
    rho = torch.rand(1, 8, 1, 1)
    gamma, beta = torch.randn(1, 8), torch.randn(1, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lin = layer_instance_norm(x, rho, gamma, beta, 1e-5)
        inorm = InstanceNorm()(x)
    ref_lin = plain_lin(x.double(), rho.double(), gamma.double(), beta.double())
    ref_in = F.instance_norm(x.double(), eps=1e-5)
    assert lin.dtype == torch.float32  # the per-channel weights are fp32
    assert (lin.double() - ref_lin).abs().max() < 2e-2 * ref_lin.abs().max()
    assert (inorm.double() - ref_in).abs().max() < 2e-2 * ref_in.abs().max()


# --- Spectral normalisation -----------------------------------------------------------------------------


def legacy_copy(layer):
    """The same layer under torch.nn.utils.spectral_norm (the official code's), with our u, v and weight."""
    if isinstance(layer, SNConv2d):
        plain = torch.nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, bias=layer.bias is not None)
    else:
        plain = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    plain = torch.nn.utils.spectral_norm(plain.double())
    plain.load_state_dict(layer.state_dict())
    return plain


def test_spectral_norm_equals_torch_spectral_norm_over_calls():
    """Several layers normalised together, three train-mode calls then an eval one: u, v, outputs and weight
    gradients equal the legacy hook's, which runs one power iteration per call on each layer."""
    torch.manual_seed(4)
    layers = [SNConv2d(3, 6, 4, bias=True).double(), SNLinear(6, 1, bias=False).double(), SNConv2d(6, 1, 3).double()]
    legacy = [legacy_copy(layer) for layer in layers]
    inputs = [torch.randn(2, 3, 9, 9, dtype=f64), torch.randn(2, 6, dtype=f64), torch.randn(2, 6, 5, 5, dtype=f64)]
    for call, training in enumerate([True, True, True, False]):
        weights = spectral_weights(layers, power_iteration_step=training)
        for module in legacy:
            module.train(training)
        refs = [module(x) for module, x in zip(legacy, inputs)]  # one power iteration each in train mode
        ours = [layer(x, w) for layer, w, x in zip(layers, weights, inputs)]
        upstream = [torch.randn_like(r) for r in refs]
        ref_grads = torch.autograd.grad(refs, [m.weight_orig for m in legacy], upstream)
        our_grads = torch.autograd.grad(ours, [layer.weight_orig for layer in layers], upstream)
        for i, (layer, module) in enumerate(zip(layers, legacy)):
            assert_close(layer.weight_u, module.weight_u, f"call {call}, layer {i}: u")
            assert_close(layer.weight_v, module.weight_v, f"call {call}, layer {i}: v")
            assert_close(ours[i], refs[i], f"call {call}, layer {i}: output")
            assert_close(our_grads[i], ref_grads[i], f"call {call}, layer {i}: d/dweight_orig")


def test_a_layer_alone_uses_its_stored_vectors():
    torch.manual_seed(5)
    layer = SNLinear(7, 3).double()
    module = legacy_copy(layer).eval()
    x = torch.randn(4, 7, dtype=f64)
    assert_close(layer(x), module(x), "output")


def test_the_power_iteration_keeps_its_buffers_and_their_storage():
    """u, v are updated in place (a CUDA graph replays into the same memory), and an earlier call's
    backward still sees the vectors of its own call."""
    torch.manual_seed(6)
    layer = SNConv2d(2, 3, 3).double()
    module = legacy_copy(layer).train()
    pointers = (layer.weight_u.data_ptr(), layer.weight_v.data_ptr())
    x1, x2 = torch.randn(1, 2, 5, 5, dtype=f64), torch.randn(1, 2, 5, 5, dtype=f64)
    first = layer(x1, spectral_weights([layer], True)[0])
    second = layer(x2, spectral_weights([layer], True)[0])  # advances u, v before the first backward
    ref_first, ref_second = module(x1), module(x2)
    (ours,) = torch.autograd.grad(first.sum() + second.sum(), layer.weight_orig)
    (ref,) = torch.autograd.grad(ref_first.sum() + ref_second.sum(), module.weight_orig)
    assert_close(ours, ref, "d/dweight_orig over two calls")
    assert (layer.weight_u.data_ptr(), layer.weight_v.data_ptr()) == pointers


# --- The fused AdaLIN/ILN path in bf16 ------------------------------------------------------------------


def fused_in_bf16(module, x, gamma, beta, upstream):
    """Output and gradients (x, rho, gamma, beta) of AdaLIN (gamma, beta given) or ILN (its own) on a bf16
    input under CPU autocast, as in a bf16 training step; asserts the hand-written backward ran."""
    x = x.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(x, gamma, beta) if isinstance(module, AdaLIN) else module(x)
    assert type(out.grad_fn).__name__ == "_LayerInstanceNormBackward"
    params = [module.rho, gamma, beta] if isinstance(module, AdaLIN) else [module.rho, module.gamma, module.beta]
    return out, torch.autograd.grad(out, [x, *params], upstream)


def plain_in_fp32(module, x, gamma, beta, upstream):
    """The official formula by autograd in fp32, on the same bf16 values."""
    x = x.bfloat16().float().requires_grad_(True)
    if isinstance(module, AdaLIN):
        params = [module.rho, gamma, beta]
        out = plain_lin(x, module.rho, gamma, beta)
    else:
        params = [module.rho, module.gamma, module.beta]
        out = plain_lin(x, module.rho, module.gamma.view(1, -1), module.beta.view(1, -1))
    return out, torch.autograd.grad(out, [x, *params], upstream)


def bf16_errors(which: str, seed: int) -> dict[str, float]:
    """Largest difference of the fused bf16 path from fp32 autograd, relative to the largest value."""
    torch.manual_seed(seed)
    n, c = 2, 8
    x = torch.randn(n, c, 16, 16) * 2 + torch.randn(n, c, 1, 1) * 3
    upstream = torch.randn(n, c, 16, 16)
    if which == "adalin":
        module = AdaLIN(c)
        with torch.no_grad():
            module.rho.uniform_(0, 1)
        gamma, beta = torch.randn(n, c, requires_grad=True), torch.randn(n, c, requires_grad=True)
    else:
        module, gamma, beta = ILN(c), None, None
        with torch.no_grad():
            module.rho.uniform_(0, 1), module.gamma.normal_(), module.beta.normal_()
    out, grads = fused_in_bf16(module, x, gamma, beta, upstream)
    ref, ref_grads = plain_in_fp32(module, x, gamma, beta, upstream)
    assert out.dtype == torch.float32 and grads[0].dtype == torch.bfloat16
    errors = {"output": ((out - ref).abs().max() / ref.abs().max()).item()}
    for name, g, r in zip(["x", "rho", "gamma", "beta"], grads, ref_grads):
        errors[f"d/d{name}"] = ((g.float() - r.reshape(g.shape)).abs().max() / r.abs().max()).item()
    return errors


# bf16 keeps 8 bits of mantissa: one rounding moves a value by up to 2^-9 = 2e-3 of itself. The fused path
# rounds the normalised values (batch and group norm of a bf16 input return bf16) and, backward, the upstream
# gradient and dx (the native kernels' dtype is the input's). Measured over 12 draws (AMD EPYC, torch 2.13):
# output up to 3.0e-3 of its largest value, gradients up to 5.5e-3 (d/dx, two roundings of each term).
# Tolerances: four roundings forward, eight backward. A wrong term is of the order of the values (below).
BF16_FORWARD, BF16_BACKWARD = 8e-3, 1.6e-2


@pytest.mark.parametrize("which", ["adalin", "iln"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fused_path_in_bf16_equals_fp32_autograd(which, seed):
    errors = bf16_errors(which, seed)
    assert errors.pop("output") < BF16_FORWARD
    assert all(e < BF16_BACKWARD for e in errors.values()), errors


@pytest.mark.parametrize(
    "fault, hurt",
    [("rho's gradient with the wrong sign", "d/drho"), ("the layer-norm half of x's gradient left out", "d/dx")],
)
def test_the_bf16_comparison_refuses_a_broken_backward(fault, hurt, monkeypatch):
    backward = layers._LayerInstanceNorm.backward

    def broken(ctx, grad):
        dx, drho, dgamma, dbeta, none = backward(ctx, grad)
        if hurt == "d/drho":
            return dx, -drho, dgamma, dbeta, none
        x, *_ = ctx.saved_tensors
        n, c, h, w = x.shape
        # the batch-norm half alone: the real backward's first call, without the group norm's
        w_in_flat, _, _, mean_in, invstd_in = ctx.saved_tensors[3:8]
        dx_in = torch.ops.aten.native_batch_norm_backward(
            grad.to(x.dtype).reshape(1, n * c, h, w),
            x.reshape(1, n * c, h, w),
            w_in_flat,
            None,
            None,
            mean_in,
            invstd_in,
            True,
            ctx.constants[2],
            [True, False, False],
        )[0]
        return dx_in.view(n, c, h, w), drho, dgamma, dbeta, none

    monkeypatch.setattr(layers._LayerInstanceNorm, "backward", staticmethod(broken))
    errors = bf16_errors("adalin", 0)
    assert errors[hurt] > 10 * BF16_BACKWARD, errors


def test_a_double_backward_through_the_fused_path_fails_loudly():
    """A gradient penalty differentiates the gradient again: the hand-written backward cannot be, and says
    so instead of treating the statistics as constants."""
    torch.manual_seed(7)
    module = ILN(4)
    x = torch.randn(2, 4, 6, 6, requires_grad=True)
    (dx,) = torch.autograd.grad(module(x).pow(2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice a function that was marked with @once_differentiable"):
        dx.pow(2).sum().backward()
