"""The FID Inception-v3 (TF graph of 2015-12-05) in plain PyTorch, and where its weights come from.

This is the network FID and KID are defined on: Google's ``inception-2015-12-05`` ImageNet graph, as
ported to PyTorch by pytorch-fid (weights ``pt_inception-2015-12-05-6726825d.pth``; torch-fidelity and
torchmetrics use a file of the same content). It differs from torchvision's Inception-v3 in three
ways that change the features, and every one is kept here:

- average pools inside the Inception blocks ignore the zero padding (TF's ``SAME`` pooling),
- the last block (``Mixed_7c``) pools with max instead of average (a quirk of that graph),
- the classifier has 1008 outputs, not 1000.

Module and parameter names equal those of the weights file, so it loads with ``strict=True``. The
output is the 2048-d ``pool_3`` feature (global average of ``Mixed_7c``); the classifier ``fc`` is
only there so the file loads and is never run.

Input: a float batch (N, 3, H, W) in [0, 1] (``input_range="0,1"``, the default) or in [-1, 1]
(``input_range="-1,1"``, e.g. a generator's tanh output), or a uint8 batch in [0, 255]. It is
resized to 299 x 299 with TF1's bilinear resize (what the TF graph does; see
`resize_bilinear_tf1`) and mapped to [-1, 1] by 2x - 1, as the U-GAT-IT authors' code and
pytorch-fid do.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError
from ..utils.torch_files import load_torch_file

WEIGHTS_FILENAME = "pt_inception-2015-12-05-6726825d.pth"
#: torch-fidelity's copy of the same conversion, under another name, in the same hub cache folder.
ALTERNATIVE_FILENAMES = ("weights-inception-2015-12-05-6726825d.pth",)
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILENAME}"
WEIGHTS_ENV = "UGATIT_INCEPTION_WEIGHTS"
#: Set to 1 to never try the network (tests, air-gapped machines).
OFFLINE_ENV = "UGATIT_OFFLINE"

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008  # the TF graph's classifier: 1000 ImageNet classes plus 8 unused


def resize_bilinear_tf1(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear resize with the semantics of TF1's ``tf.image.resize_bilinear`` (align_corners=False).

    TF1 maps output pixel i to source coordinate i * (in / out), without the half-pixel offset that
    PyTorch (``align_corners=False``), PIL and TF2 use, and without antialiasing when shrinking. The
    scale and coordinates are computed in float32 as TF's CPU kernel does, and the interpolation is
    done as TF writes it: top = tl + (tr - tl) * dx, bottom likewise, out = top + (bottom - top) * dy.
    Same-size "resizing" returns the input unchanged.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a (N, C, H, W) batch, got shape {tuple(x.shape)}")
    out_h, out_w = size
    in_h, in_w = x.shape[-2:]
    if (in_h, in_w) == (out_h, out_w):
        return x
    y0, y1, dy = _tf1_source_coords(in_h, out_h, x.device)
    x0, x1, dx = _tf1_source_coords(in_w, out_w, x.device)
    dx = dx.to(x.dtype)
    dy = dy.to(x.dtype).view(-1, 1)
    rows_top = x.index_select(-2, y0)
    rows_bottom = x.index_select(-2, y1)
    top = rows_top.index_select(-1, x0) + (rows_top.index_select(-1, x1) - rows_top.index_select(-1, x0)) * dx
    bottom = (
        rows_bottom.index_select(-1, x0) + (rows_bottom.index_select(-1, x1) - rows_bottom.index_select(-1, x0)) * dx
    )
    return top + (bottom - top) * dy


def _tf1_source_coords(in_size: int, out_size: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Lower and upper source index and the fraction between them, for every output index."""
    scale = torch.tensor(in_size, dtype=torch.float32) / torch.tensor(out_size, dtype=torch.float32)
    src = torch.arange(out_size, dtype=torch.float32) * scale
    lower = src.floor()
    frac = src - lower
    lower = lower.long().clamp(max=in_size - 1)
    upper = (lower + 1).clamp(max=in_size - 1)
    return lower.to(device), upper.to(device), frac.to(device)


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3, TF's) + ReLU; keys ``conv.*`` and ``bn.*``."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool3(x: Tensor) -> Tensor:
    # TF's SAME average pooling divides by the number of real (unpadded) pixels in the window.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35x35 block (Mixed_5b/c/d): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""

    def __init__(self, in_ch: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(in_ch, 64, 1)
        self.branch5x5_1 = ConvBN(in_ch, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(in_ch, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(in_ch, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool3(x))
        return torch.cat([b1, b5, b3, bp], 1)


class BlockB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 3x3 s2 | 1x1-3x3-3x3 s2 | maxpool s2."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(in_ch, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(in_ch, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class BlockC(nn.Module):
    """17x17 block (Mixed_6b..e) with factorised 7x7 convolutions."""

    def __init__(self, in_ch: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = ConvBN(in_ch, 192, 1)
        self.branch7x7_1 = ConvBN(in_ch, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(in_ch, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(in_ch, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            bd = layer(bd)
        bp = self.branch_pool(_tf_avg_pool3(x))
        return torch.cat([b1, b7, bd, bp], 1)


class BlockD(nn.Module):
    """17 -> 8 reduction (Mixed_7a)."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(in_ch, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(in_ch, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class BlockE(nn.Module):
    """8x8 block (Mixed_7b, Mixed_7c) with split 1x3 / 3x1 branches.

    ``pool="max"`` reproduces the FID graph's Mixed_7c, whose pooling branch uses max pooling.
    """

    def __init__(self, in_ch: int, pool: str = "avg") -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = ConvBN(in_ch, 320, 1)
        self.branch3x3_1 = ConvBN(in_ch, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(in_ch, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(in_ch, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        s = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(s), self.branch3x3_2b(s)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _tf_avg_pool3(x)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)


class FIDInceptionV3(nn.Module):
    """FID Inception-v3 returning 2048-d pool_3 features, shape (N, 2048), float32.

    Args:
        input_range: "0,1" (float images in [0, 1]) or "-1,1" (float images in [-1, 1]).
            uint8 batches are always read as [0, 255].
        resize: resize inputs to 299 x 299 with `resize_bilinear_tf1` (no-op when already 299).
    """

    #: read by `ugatit.metrics.features` (images are brought to this size before batching) and by
    #: torchmetrics (``num_features``).
    input_size = INPUT_SIZE
    num_features = FEATURE_DIM
    #: set by `load_fid_inception` once the FID weights are loaded; None while the weights are untrained
    weights_info: WeightsInfo | None = None

    @property
    def name(self) -> str:
        """What a report says ran: the FID network only once its weights are the FID weights."""
        if self.weights_info is None:
            return "Inception-v3 architecture with untrained weights (not the FID network), pool3 2048-d"
        return "FID Inception-v3 (TF 2015-12-05 graph), pool3 2048-d"

    def __init__(self, input_range: str = "0,1", resize: bool = True) -> None:
        super().__init__()
        if input_range not in ("0,1", "-1,1"):
            raise ValueError(f"input_range must be '0,1' or '-1,1', got {input_range!r}")
        self.input_range = input_range
        self.resize = resize
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, pool_features=32)
        self.Mixed_5c = BlockA(256, pool_features=64)
        self.Mixed_5d = BlockA(288, pool_features=64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, channels_7x7=128)
        self.Mixed_6c = BlockC(768, channels_7x7=160)
        self.Mixed_6d = BlockC(768, channels_7x7=160)
        self.Mixed_6e = BlockC(768, channels_7x7=192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, pool="avg")
        self.Mixed_7c = BlockE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)  # kept for strict loading only
        self.eval()
        self.requires_grad_(False)

    def normalise(self, x: Tensor) -> Tensor:
        """Any accepted input -> float32 in [-1, 1], resized to 299 x 299 if ``resize``."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0 * 2.0 - 1.0
        elif self.input_range == "0,1":
            x = x.float() * 2.0 - 1.0
        else:
            x = x.float()
        if self.resize:
            x = resize_bilinear_tf1(x, (INPUT_SIZE, INPUT_SIZE))
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self.normalise(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        return x.mean(dim=(2, 3))


@dataclass
class WeightsInfo:
    """Which weights file a feature extractor was loaded from, for the report."""

    path: str
    filename: str
    sha256: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.filename, "path": self.path, "sha256": self.sha256}


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks (the weights are ~95 MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hub_checkpoint_dir() -> Path:
    """Where ``torch.hub`` keeps downloaded weights ($TORCH_HOME/hub/checkpoints by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def locate_weights(path: str | Path | None = None, download: bool = True) -> Path:
    """Find the FID Inception weights file, downloading it into the hub cache if allowed.

    Order: ``path`` (the `weights` argument of `load_fid_inception`), then $UGATIT_INCEPTION_WEIGHTS, then the torch hub
    cache (pytorch-fid's or torch-fidelity's file name), then a download from pytorch-fid's release
    into the hub cache (skipped when ``download`` is False or $UGATIT_OFFLINE is set). An explicit path
    that does not exist is an error rather than a fall-through, so a typo is never silently replaced.
    """
    if path is not None:
        return _existing(Path(path), "`weights`")
    env_path = os.environ.get(WEIGHTS_ENV)
    if env_path:
        return _existing(Path(env_path), f"${WEIGHTS_ENV}")
    cache = hub_checkpoint_dir()
    for name in (WEIGHTS_FILENAME, *ALTERNATIVE_FILENAMES):
        if (cache / name).is_file():
            return cache / name
    target = cache / WEIGHTS_FILENAME
    if download and not _offline():
        try:
            cache.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(WEIGHTS_URL, str(target), progress=True)
            return target
        except Exception as exc:  # any network failure ends in the same advice
            reason = f"download failed ({type(exc).__name__}: {exc})".replace("\n", " ")
    else:
        reason = f"offline (${OFFLINE_ENV} is set)" if _offline() else "download disabled"
    raise UserError(
        f"FID Inception weights not found and {reason}: download {WEIGHTS_URL} and put it at {target}, "
        f"or give its path as `weights` (or set ${WEIGHTS_ENV})"
    )


def _existing(path: Path, origin: str) -> Path:
    if not path.is_file():
        raise UserError(f"{origin}: no such file: {path}")
    return path


def load_fid_inception(
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    input_range: str = "0,1",
    download: bool = True,
) -> tuple[FIDInceptionV3, WeightsInfo]:
    """The FID Inception with pretrained weights (see `locate_weights`), in eval mode, on ``device``."""
    path = locate_weights(weights, download=download)
    try:
        state = load_torch_file(path, "Inception weights")
    except UserError as exc:
        raise UserError(f"{exc}; it is not the FID Inception weights file ({WEIGHTS_FILENAME})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    model = FIDInceptionV3(input_range=input_range)
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not the FID Inception weights file ({WEIGHTS_FILENAME}): {first}") from None
    info = WeightsInfo(path=str(path), filename=path.name, sha256=sha256_of(path))
    model.weights_info = info  # type: ignore[attr-defined]
    return model.to(device), info
