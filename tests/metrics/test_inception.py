"""The FID Inception: layout of pytorch-fid's weights file, TF1 resize, weight lookup, input handling."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from ugatit.errors import UserError
from ugatit.metrics import inception
from ugatit.metrics.inception import (
    WEIGHTS_FILENAME,
    WEIGHTS_URL,
    FIDInceptionV3,
    load_fid_inception,
    locate_weights,
    resize_bilinear_tf1,
)

# Keys and shapes of pt_inception-2015-12-05-6726825d.pth: torchvision's Inception3 layout with
# num_classes=1008 and no AuxLogits (pytorch-fid's fid_inception_v3 loads the file into exactly that).
KNOWN_KEYS = {
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_1a_3x3.bn.running_mean": (32,),
    "Conv2d_2b_3x3.conv.weight": (64, 32, 3, 3),
    "Conv2d_4a_3x3.conv.weight": (192, 80, 3, 3),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_5b.branch5x5_2.conv.weight": (64, 48, 5, 5),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7b.branch3x3_2b.conv.weight": (384, 384, 3, 1),
    "Mixed_7c.branch3x3dbl_3a.conv.weight": (384, 384, 1, 3),
    "Mixed_7c.branch_pool.conv.weight": (192, 2048, 1, 1),
    "Mixed_7c.branch_pool.bn.running_var": (192,),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}
# 94 conv+BN units x 6 entries (conv.weight, bn.weight/bias/running_mean/running_var/num_batches_tracked)
# + fc.weight + fc.bias.
EXPECTED_KEY_COUNT = 566
# torchvision's Inception-v3 has 27,161,264 parameters; minus AuxLogits (3,326,696), plus 8 more
# classes in fc (8 x 2048 + 8).
EXPECTED_PARAMS = 27_161_264 - 3_326_696 + 8 * 2048 + 8


def random_state_dict(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the module's own names and shapes, filled with random values that keep the
    signal alive through 94 layers (He-scaled convolutions, batch norms close to identity)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if not value.dtype.is_floating_point:
            state[key] = value.clone()
        elif key.endswith("conv.weight"):
            state[key] = torch.randn(value.shape, generator=g) * (2.0 / value[0].numel()) ** 0.5
        elif key.endswith(("running_var", "bn.weight")):
            state[key] = 1.0 + 0.1 * torch.rand(value.shape, generator=g)
        else:  # bn.bias, running_mean, fc
            state[key] = 0.01 * torch.randn(value.shape, generator=g)
    return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / WEIGHTS_FILENAME
    torch.save(random_state_dict(FIDInceptionV3()), path)
    return path


def test_state_dict_layout_matches_pytorch_fid_weights_file():
    model = FIDInceptionV3()
    state = model.state_dict()
    for key, shape in KNOWN_KEYS.items():
        assert tuple(state[key].shape) == shape, key
    assert len(state) == EXPECTED_KEY_COUNT
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS
    assert not any(k.startswith("AuxLogits") for k in state)


def test_loads_strict_and_returns_pool3_features(weights_file):
    model, info = load_fid_inception(weights_file)
    assert info.filename == WEIGHTS_FILENAME
    assert info.sha256 == hashlib.sha256(weights_file.read_bytes()).hexdigest()
    noise = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 0.2
    images = noise + torch.tensor([0.0, 0.8]).view(2, 1, 1, 1)  # a dark and a bright image
    with torch.no_grad():
        feats = model(images)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all() and (feats >= 0).all()  # averages of ReLU outputs
    assert not torch.allclose(feats[0], feats[1])


def test_the_report_names_what_ran(weights_file):
    """Only the network with the FID weights calls itself the FID Inception."""
    from ugatit.metrics.features import describe_extractor

    untrained = describe_extractor(FIDInceptionV3())
    assert "untrained" in untrained["name"] and "FID Inception" not in untrained["name"]
    assert untrained["weights_sha256"] is None
    loaded = describe_extractor(load_fid_inception(weights_file)[0])
    assert loaded["name"].startswith("FID Inception-v3 (TF 2015-12-05 graph)") and loaded["weights_sha256"]


def test_input_conventions_agree(weights_file):
    model, _ = load_fid_inception(weights_file)
    pm1 = FIDInceptionV3(input_range="-1,1")
    pm1.load_state_dict(model.state_dict())
    as_uint8 = torch.randint(0, 256, (1, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    as_01 = as_uint8.float() / 255
    with torch.no_grad():
        a, b, c = model(as_uint8), model(as_01), pm1(as_01 * 2 - 1)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b, c, rtol=1e-5, atol=1e-5)


def test_wrong_file_is_a_user_error(tmp_path):
    path = tmp_path / "not_inception.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(UserError, match="is not the FID Inception weights file"):
        load_fid_inception(path)


def test_tf1_resize_upscale_by_hand():
    # 2 -> 3 with TF1 (source = i * 2/3, no half-pixel offset): rows/cols sample 0, 2/3, 4/3 (clamped
    # to the last pixel). Along a row [0, 3]: 0, 0 + 3 * 2/3 = 2, 3.
    x = torch.tensor([[[[0.0, 3.0], [6.0, 9.0]]]])
    expected = torch.tensor([[[[0.0, 2.0, 3.0], [4.0, 6.0, 7.0], [6.0, 8.0, 9.0]]]])
    torch.testing.assert_close(resize_bilinear_tf1(x, (3, 3)), expected, rtol=0, atol=1e-6)


def test_tf1_resize_downscale_picks_pixels_without_antialiasing():
    # 4 -> 2: source = 0 and 2 exactly, so TF1 returns pixels 0 and 2; PyTorch's half-pixel
    # bilinear would give 0.5 and 2.5.
    x = torch.tensor([[[[0.0, 1.0, 2.0, 3.0]]]])
    torch.testing.assert_close(resize_bilinear_tf1(x, (1, 2)), torch.tensor([[[[0.0, 2.0]]]]))
    half_pixel = torch.nn.functional.interpolate(x, size=(1, 2), mode="bilinear", align_corners=False)
    assert not torch.allclose(half_pixel, torch.tensor([[[[0.0, 2.0]]]]))


def test_tf1_resize_same_size_is_identity():
    x = torch.rand(1, 3, 7, 5)
    assert resize_bilinear_tf1(x, (7, 5)) is x


def test_weights_found_in_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    cached = tmp_path / "hub" / "checkpoints" / WEIGHTS_FILENAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert locate_weights() == cached


def test_env_var_and_explicit_path(tmp_path, monkeypatch):
    file = tmp_path / "w.pth"
    file.write_bytes(b"x")
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(file))
    assert locate_weights() == file
    with pytest.raises(UserError, match="no such file"):
        locate_weights(tmp_path / "missing.pth")
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "gone.pth"))
    with pytest.raises(UserError, match="UGATIT_INCEPTION_WEIGHTS"):
        locate_weights()


def test_offline_without_weights_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv(inception.OFFLINE_ENV, "1")
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    with pytest.raises(UserError) as err:
        locate_weights()
    message = str(err.value)
    assert "\n" not in message
    assert WEIGHTS_URL in message
    assert str(tmp_path / "hub" / "checkpoints" / WEIGHTS_FILENAME) in message
    assert "`weights`" in message  # the library's term; the CLI says --inception-weights (tests/cli)


def test_image_tensor_resize_modes():
    from PIL import Image

    from ugatit.metrics.features import image_tensor

    pixels = torch.randint(0, 256, (10, 14, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    img = Image.fromarray(pixels.numpy())
    native = image_tensor(img, None)
    assert native.shape == (3, 10, 14) and native.dtype == torch.float32
    torch.testing.assert_close(native, pixels.permute(2, 0, 1).float() / 255)
    tf1 = image_tensor(img, 21, "tf1")
    torch.testing.assert_close(tf1, resize_bilinear_tf1(native.unsqueeze(0), (21, 21)).squeeze(0))
    pil = image_tensor(img, 21, "pil")
    assert pil.shape == (3, 21, 21) and torch.all(pil * 255 == (pil * 255).round())  # 8-bit values


def test_extract_features_keeps_order_and_never_mixes_sizes():
    from ugatit.metrics.features import extract_features

    class Probe(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.batch_shapes = []

        def forward(self, x):
            self.batch_shapes.append(tuple(x.shape))
            return torch.stack([x.mean(dim=(1, 2, 3)), torch.full((len(x),), float(x.shape[-1]))], 1)

    images = [torch.full((3, s, s), i / 10) for i, s in enumerate([4, 4, 4, 6, 6, 4, 4])]
    probe = Probe()
    feats = extract_features(images, probe, batch_size=2)
    torch.testing.assert_close(feats[:, 0], torch.arange(7) / 10)
    assert feats[:, 1].tolist() == [4, 4, 4, 6, 6, 4, 4]
    assert [s[0] for s in probe.batch_shapes] == [2, 1, 2, 2]
