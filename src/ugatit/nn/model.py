"""The six U-GAT-IT networks together, the official checkpoint layout in and out, and translation.

An official PyTorch checkpoint is a dict of six state dicts: genA2B, genB2A, disGA, disGB, disLA, disLB.
`UGATIT.official_state_dict()` writes exactly that; `load_official_state_dict` reads it with strict
checking and turns a mismatch (wrong size, light vs full) into a one-line `UserError`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..config import ModelConfig, ablation_name
from ..domains import GENERATOR_OF, Direction, check_direction, source_and_target
from ..errors import UserError
from .networks import Discriminator, Generator, init_paper_weights
from .sizes import check_model_config

NETWORK_NAMES = ("genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB")
GENERATORS = ("genA2B", "genB2A")
DISCRIMINATORS = ("disGA", "disGB", "disLA", "disLB")


class Translation(NamedTuple):
    image: Tensor  # (B, 3, H, W) in [-1, 1]
    cam_logit: Tensor | None  # (B, 2): the auxiliary classifier's gap and gmp logits (None: no CAM)
    heatmap: Tensor | None  # (B, 1, H/4, W/4): channel sum of the attended features (None: no CAM)


class Judgement(NamedTuple):
    """What a discriminator says of a batch."""

    logits: Tensor  # (B, 1, h, w): real/fake patch logits
    cam_logit: Tensor | None  # (B, 2): its auxiliary classifier's gap and gmp logits (None: no CAM)
    heatmap: Tensor | None  # (B, 1, h', w'): channel sum of its attended features (None: no CAM)


class UGATIT(nn.Module):
    """genA2B, genB2A (generators), disGA, disGB (global, 7 layers at >= 96 px), disLA, disLB (local, 5).

    The networks are built in the official order (genA2B, genB2A, disGA, disGB, disLA, disLB), so that
    `init="pytorch"` under the same seed reproduces the official code's initial weights.
    """

    def __init__(self, cfg: ModelConfig | None = None, *, discriminators: bool = True):
        super().__init__()
        cfg = cfg or ModelConfig()
        n_global, n_local = check_model_config(cfg)
        # Keep the resolved depths so a saved config rebuilds the same networks at any later version.
        self.config = replace(cfg, n_layers_global=n_global, n_layers_local=n_local)
        make_generator, make_discriminator = _network_classes(cfg)
        gen = dict(ch=cfg.ch, n_res=cfg.n_res, img_size=cfg.img_size, light=cfg.light)
        self.genA2B = make_generator(**gen)
        self.genB2A = make_generator(**gen)
        # Inference needs only the generators; the four discriminators are most of the light model.
        self.has_discriminators = discriminators
        if discriminators:
            self.disGA = make_discriminator(cfg.ch, n_global)
            self.disGB = make_discriminator(cfg.ch, n_global)
            self.disLA = make_discriminator(cfg.ch, n_local)
            self.disLB = make_discriminator(cfg.ch, n_local)
        if cfg.init == "normal":
            init_paper_weights(self)

    def generators(self) -> list[Generator]:
        return [self.genA2B, self.genB2A]

    def discriminators(self) -> list[Discriminator]:
        return [self.disGA, self.disGB, self.disLA, self.disLB]

    def generator(self, direction: Direction) -> Generator:
        return getattr(self, GENERATOR_OF[check_direction(direction)])

    def discriminators_of(self, domain: str) -> dict[str, Discriminator]:
        """{"global": disG<domain>, "local": disL<domain>}: the two that judge images of `domain`."""
        if domain not in ("A", "B"):
            raise ValueError(f"domain must be 'A' or 'B', got {domain!r}")
        if not self.has_discriminators:
            raise UserError("this model was loaded without its discriminators")
        return {"global": getattr(self, f"disG{domain}"), "local": getattr(self, f"disL{domain}")}

    # --- The official checkpoint layout ---------------------------------------------------------------

    def official_state_dict(self) -> dict[str, dict[str, Tensor]]:
        """{'genA2B': state_dict, ..., 'disLB': state_dict}, as the official UGATIT.save writes."""
        return {name: getattr(self, name).state_dict() for name in self.network_names()}

    def network_names(self) -> tuple[str, ...]:
        return NETWORK_NAMES if self.has_discriminators else GENERATORS

    def load_official_state_dict(self, state: dict[str, dict[str, Tensor]]) -> None:
        """Load the official six-state-dict layout with strict key and shape checks (only the two
        generators for a model built without discriminators)."""
        networks = self.network_names()
        if not isinstance(state, dict):
            raise UserError("not a U-GAT-IT checkpoint: expected a dict of state dicts")
        missing = [name for name in networks if name not in state]
        if missing:
            raise UserError(f"checkpoint has no '{missing[0]}' network (expected {', '.join(networks)})")
        for name in networks:
            net = getattr(self, name)
            expected = net.state_dict()
            given = state[name]
            for key, value in given.items():
                if key in expected and tuple(value.shape) != tuple(expected[key].shape):
                    raise UserError(
                        f"{name}.{key} has shape {tuple(value.shape)}, this model expects "
                        f"{tuple(expected[key].shape)}: the checkpoint was made with another "
                        f"ch/n_res/light/img_size/ablation (this model: {_describe(self.config)})"
                    )
            result = net.load_state_dict(given, strict=False)
            if result.missing_keys or result.unexpected_keys:
                key = (result.missing_keys or result.unexpected_keys)[0]
                what = "lacks" if result.missing_keys else "has an unexpected"
                raise UserError(f"checkpoint network {name} {what} key '{key}' (this model: {_describe(self.config)})")

    # --- Inference -----------------------------------------------------------------------------------

    @torch.no_grad()
    def translate(self, images: Tensor, direction: Direction = "a2b") -> Translation:
        """Translate a batch (B, 3, img, img) in [-1, 1]; returns the image, cam logits and heatmap."""
        gen = self.generator(direction)
        was_training = gen.training
        gen.eval()
        try:
            return Translation(*gen(images))
        finally:
            gen.train(was_training)

    @torch.no_grad()
    def judge(self, images: Tensor, domain: str) -> dict[str, Judgement]:
        """What the global and the local discriminator of `domain` ("A" or "B") say of a batch in [-1, 1]:
        {"global": Judgement, "local": Judgement}. In eval mode, so the spectral norm's stored vectors are
        used and not advanced (the paper's Figure 2 (c)-(d) shows these heatmaps on translations)."""
        judged = {}
        for scale, disc in self.discriminators_of(domain).items():
            was_training = disc.training
            disc.eval()
            try:
                judged[scale] = Judgement(*disc(images))
            finally:
                disc.train(was_training)
        return judged

    def judge_translation(self, translation: Tensor, direction: Direction) -> dict[str, Judgement]:
        """`judge` by the discriminators of `direction`'s target domain (a2b: disGB, disLB)."""
        return self.judge(translation, source_and_target(check_direction(direction))[1])


def _network_classes(cfg: ModelConfig):
    """(generator, discriminator) constructors of the config's variant."""
    if cfg.variant == "official":
        from functools import partial

        return partial(Generator, cam=cfg.g_cam, norm=cfg.decoder_norm), partial(Discriminator, cam=cfg.d_cam)
    if cfg.variant not in ("tf", "tf-2019-07"):
        raise UserError(f"config key `model.variant` must be official, tf or tf-2019-07, got {cfg.variant!r}")
    from functools import partial

    from .tf_networks import SMOOTHING_OFFSET, TFDiscriminator, TFGenerator

    first = cfg.variant == "tf-2019-07"  # its rho was used as stored, whatever --smoothing said
    offset = SMOOTHING_OFFSET if cfg.smoothing and not first else 0.0
    return (
        partial(TFGenerator, rho_offset=offset, separate_cam_logit=first),
        partial(TFDiscriminator, raw_cam_weights=first),
    )


def _describe(cfg: ModelConfig) -> str:
    kind = "light" if cfg.light else f"full at {cfg.img_size}px"
    variant = "" if cfg.variant == "official" else f", {cfg.variant} variant"
    ablation = ablation_name(cfg)
    ablation = "" if ablation == "full" else f", ablation {ablation}"
    return f"{kind}, ch={cfg.ch}, n_res={cfg.n_res}{variant}{ablation}"
