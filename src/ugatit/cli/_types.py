"""argparse types shared by the subcommands: a bad number is argparse's one-line usage error."""

from __future__ import annotations

import argparse

from ..config import Config
from ..utils.device import DEVICE_HELP


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def paper_default(key: str) -> str:
    """A config key's default, the paper's (`Config()`), as a help text writes it: "on"/"off", 10, 1e-4.
    Help texts take defaults from here, never by hand."""
    section, _, name = key.partition(".")
    value = getattr(getattr(Config(), section), name)
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value and not 1e-3 <= abs(value) < 1e6:
        mantissa, _, exponent = f"{value:e}".partition("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def apply_config_flags(config: Config, given: dict, config_flags: dict[str, str]) -> tuple[Config, set[str]]:
    """`config` with the keys set by the flags the user gave (`given`: the parsed arguments, holding only
    those typed; `config_flags`: flag -> config key), and those keys."""
    from dataclasses import replace

    sections = {name: getattr(config, name) for name in ("model", "loss", "optim", "data", "train")}
    chosen = set()
    for flag, key in config_flags.items():
        dest = flag[2:].replace("-", "_")
        if dest in given:
            section, name = key.split(".")
            sections[section] = replace(sections[section], **{name: given[dest]})
            chosen.add(key)
    return config.replace(**sections), chosen


def device(text: str) -> str:
    """--device: auto, cpu, cuda, cuda:N or mps (whether it exists here is checked when it is used)."""
    from ..errors import UserError
    from ..utils.device import check_device_name

    try:
        return check_device_name(text)
    except UserError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (choose {DEVICE_HELP})") from None


def device_argument(parser: argparse.ArgumentParser, default: str = "auto", **kwargs) -> None:
    """The one --device flag of every subcommand."""
    parser.add_argument(
        "--device",
        type=device,
        default=default,
        metavar="DEVICE",
        help=f"where to run: {DEVICE_HELP} (auto: CUDA, then MPS, then the CPU)",
        **kwargs,
    )


#: What --checkpoint takes wherever a trained model is loaded (`ugatit.weights.load_model` reads them all).
CHECKPOINT_HELP = (
    "run folder, training checkpoint (.pt), export (.safetensors), official checkpoint (.pt), "
    "PaddleGAN weights (.pdparams), TF checkpoint (folder or prefix), or any of them on the Hugging Face "
    "Hub: hf://NAMESPACE/NAME[@REVISION][/PATH]"
)


def require_checkpoint(path: str) -> None:
    """Fail on a mistyped checkpoint path before torch is imported and long before a model is loaded. An
    hf:// path (`ugatit.weights.hub`) is checked when it is fetched."""
    from ..errors import UserError
    from ..utils.files import path_exists

    if not path.startswith("hf://") and not path_exists(path):
        raise UserError(f"checkpoint not found: {path}")


def checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    """The required --checkpoint of the commands that load a trained model to translate with."""
    parser.add_argument("--checkpoint", required=True, metavar="PATH", help=CHECKPOINT_HELP)
