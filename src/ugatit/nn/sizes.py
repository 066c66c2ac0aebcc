"""Which image sizes and discriminator depths fit together: the size rules in one place."""

from __future__ import annotations

from ..config import DECODER_NORMS, PAPER_GLOBAL_LAYERS, PAPER_LOCAL_LAYERS, ModelConfig, ablation_name
from ..errors import UserError

#: Two stride-2 convolutions bring the generator's bottleneck to size / 4, and the smallest
#: discriminator needs 32 px (see `discriminator_output_size`).
SIZE_MULTIPLE = 4
MIN_SIZE = 32


def check_image_size(size: int, what: str = "image size") -> int:
    """`size` if a model can run at it (a multiple of 4, at least 32), else a `UserError`."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise UserError(f"{what} must be an integer, got {size!r}")
    if size < MIN_SIZE or size % SIZE_MULTIPLE:
        raise UserError(f"{what} must be a multiple of {SIZE_MULTIPLE} and at least {MIN_SIZE}, got {size}")
    return size


def discriminator_output_size(img_size: int, n_layers: int) -> int | None:
    """Side of the patch-logit map for a square input, or None where a reflection pad meets a 1-px map
    (PyTorch's reflection padding needs the pad to be smaller than the input)."""
    size = img_size
    for _ in range(n_layers - 2):  # k4 s2 convs after a 1-px pad
        if size < 2:
            return None
        size = (size + 2 - 4) // 2 + 1
    for _ in range(2):  # the k4 s1 conv, then the head conv, each after a 1-px pad
        if size < 2:
            return None
        size = size - 1
    return size if size >= 1 else None


def discriminator_layers(img_size: int, requested: int | None, paper: int, key: str) -> int:
    """The depth to build: the requested one (checked), else the paper's where it fits, else the deepest
    that does. The official global D (7 layers) cannot run below 96 px; at 64 px we use 6."""
    if requested is not None:
        if requested < 3 or discriminator_output_size(img_size, requested) is None:
            raise UserError(
                f"{key}={requested} does not fit {img_size}px images (the deepest that does: "
                f"{_deepest(img_size, max(requested, paper))})"
            )
        return requested
    depth = _deepest(img_size, paper)
    if depth is None:
        raise UserError(f"image size {img_size} is too small for any discriminator (use at least 32)")
    return depth


def _deepest(img_size: int, limit: int) -> int | None:
    for depth in range(limit, 2, -1):
        if discriminator_output_size(img_size, depth) is not None:
            return depth
    return None


def check_model_config(cfg: ModelConfig) -> tuple[int, int]:
    """Validate a ModelConfig; return the (global, local) discriminator depths it resolves to."""
    check_image_size(cfg.img_size, "the image size `model.img_size`")
    if cfg.ch < 1 or cfg.n_res < 1:
        raise UserError(f"ch and n_res must be positive, got ch={cfg.ch}, n_res={cfg.n_res}")
    if cfg.init not in ("normal", "pytorch"):
        raise UserError(f"init must be 'normal' or 'pytorch', got {cfg.init!r}")
    if cfg.decoder_norm not in DECODER_NORMS:
        raise UserError(f"`model.decoder_norm` must be one of {', '.join(DECODER_NORMS)}, got {cfg.decoder_norm!r}")
    if cfg.variant != "official" and ablation_name(cfg) != "full":
        raise UserError(
            f"the ablation {ablation_name(cfg)} is of the official networks, not of the {cfg.variant} variant "
            "(`model.g_cam`, `model.d_cam` and `model.decoder_norm` keep their defaults there)"
        )
    n_global = discriminator_layers(cfg.img_size, cfg.n_layers_global, PAPER_GLOBAL_LAYERS, "n_layers_global")
    n_local = discriminator_layers(cfg.img_size, cfg.n_layers_local, PAPER_LOCAL_LAYERS, "n_layers_local")
    return n_global, n_local
