"""All configuration in one place: dataclasses whose defaults are the paper's.

A `Config` is saved into every checkpoint and every run directory, so a model can always be rebuilt
exactly as it was trained. Files are YAML or JSON; unknown keys are an error that names the key, so a
typo in a config file never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from .errors import UserError

#: The official discriminator depths (receptive fields 286 and 70 px).
PAPER_GLOBAL_LAYERS = 7
PAPER_LOCAL_LAYERS = 5


@dataclass
class ModelConfig:
    """The six networks. Defaults: the paper's full model at 256 px."""

    img_size: int = 256
    ch: int = 64  # ngf = ndf
    n_res: int = 4  # residual blocks in the encoder and in the decoder bottleneck
    light: bool = False  # light: gamma/beta MLP on pooled features instead of the whole map
    # Discriminator depths; None picks the paper's (7 global, 5 local) when the image size allows,
    # otherwise the deepest that does (see networks.discriminator_layers).
    n_layers_global: int | None = None
    n_layers_local: int | None = None
    # "normal": N(0, 0.02) for conv/linear weights, zero biases (the paper, the TF code);
    # "pytorch": PyTorch's default init (what the official PyTorch code does).
    init: Literal["normal", "pytorch"] = "normal"
    # Which networks compute: "official" (the official PyTorch code; the only one we train), "tf" (the
    # authors' TensorFlow graph, for their checkpoints: see nn/tf_networks.py), "tf-2019-07" (their first
    # public TF code, which the released selfie2anime checkpoints may come from). Imports set it.
    variant: Literal["official", "tf", "tf-2019-07"] = "official"
    # tf variant only: the authors' --smoothing (their default), AdaLIN then uses clip(rho - 0.1, 0, 1).
    smoothing: bool = True
    # The paper's ablations (its Table 1; see docs/ablations.md and `ABLATIONS`), official networks only:
    # the CAM attention of the generators and of the discriminators on or off, and the normalisation of
    # the generators' decoder. The defaults are the paper's model.
    g_cam: bool = True
    d_cam: bool = True
    decoder_norm: Literal["adalin", "adain", "lin", "in", "ln", "gn"] = "adalin"


#: The decoder normalisations `ModelConfig.decoder_norm` takes (nn/networks.py builds them).
DECODER_NORMS = ("adalin", "adain", "lin", "in", "ln", "gn")

#: The paper's ablations by name (`ugatit ablate --variants`): the ModelConfig keys each one changes.
#: Names join with "+" ("no-cam+ln"); `ablation_name` is the inverse.
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "no-g-cam": {"g_cam": False},
    "no-d-cam": {"d_cam": False},
    "no-cam": {"g_cam": False, "d_cam": False},
    **{norm: {"decoder_norm": norm} for norm in DECODER_NORMS if norm != "adalin"},
}


def ablation(model: ModelConfig, name: str) -> ModelConfig:
    """`model` changed into the ablation `name` (a key of `ABLATIONS`, or several joined with "+")."""
    changes: dict[str, Any] = {}
    for part in name.split("+"):
        if part not in ABLATIONS:
            raise UserError(f"unknown model variant {part!r} (known: {', '.join(ABLATIONS)}; join them with '+')")
        for key, value in ABLATIONS[part].items():
            if changes.get(key, value) != value:
                raise UserError(f"model variant {name!r} sets `model.{key}` twice")
            changes[key] = value
    return dataclasses.replace(model, **changes)


def ablation_name(model: ModelConfig) -> str:
    """The ablation a model is ("full" for the paper's model, "no-cam+ln", ...)."""
    parts = []
    if not model.g_cam or not model.d_cam:
        parts.append(
            {(False, False): "no-cam", (False, True): "no-g-cam", (True, False): "no-d-cam"}[(model.g_cam, model.d_cam)]
        )
    if model.decoder_norm != "adalin":
        parts.append(model.decoder_norm)
    return "+".join(parts) or "full"


@dataclass
class LossConfig:
    """Loss weights (lambda_1..4 in the paper)."""

    adv_weight: float = 1.0
    cycle_weight: float = 10.0
    identity_weight: float = 10.0
    cam_weight: float = 1000.0


@dataclass
class OptimConfig:
    """Adam with coupled L2 weight decay on every parameter, as the official PyTorch code."""

    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 1e-4
    iterations: int = 1_000_000
    # Constant lr for the first half, then linear decay to 0 at the last iteration.
    decay: bool = True


@dataclass
class DataConfig:
    # Per process: the global batch is batch_size x the processes that train together (torchrun ranks,
    # `ugatit train --nproc`). Their number is the launch's, not a setting: each checkpoint records it
    # with its data position.
    batch_size: int = 1
    num_workers: int | None = None  # None: automatic (ugatit.data.unpaired.default_workers)
    resize_margin: int = 30  # train images are resized to img_size + margin, then randomly cropped
    flip: bool = True


@dataclass
class TrainConfig:
    """How a run is executed; none of these change the maths of an update."""

    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = False
    compile: bool = False
    # CUDA only: plain eager iterations instead of the fast path (cuDNN autotuning, the iteration as one
    # CUDA graph, losses checked on the device and read at log/save time). The same updates either way.
    eager: bool = False
    log_every: int = 10
    sample_every: int = 1000
    save_every: int = 10_000
    keep_last: int = 3
    eval_every: int = 0  # 0: no evaluation during training


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        return _from_dict(cls, data, "")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write as YAML or JSON, chosen by the file extension, atomically: a crash leaves the old file."""
        from .utils.files import atomic_write

        path = Path(path)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        else:
            text = self.to_json() + "\n"
        atomic_write(path, lambda tmp: tmp.write_text(text))

    @classmethod
    def load(cls, path: str | Path, base: Config | None = None, *, complete: bool = False) -> Config:
        """Read a YAML or JSON file; keys it leaves out keep their value in `base` (default: the
        paper's), so a file holding only `optim: {iterations: N}` changes only that. `complete=True`
        is for files that `save` wrote (a run's config.yaml): a missing key means a damaged file, not
        "the default"."""
        path = Path(path)
        data = read_config_file(path)
        if complete:
            _require_every_key(path, data)
        if base is not None:
            merged = base.to_dict()
            for section, values in data.items():
                if isinstance(merged.get(section), dict) and isinstance(values, dict):
                    merged[section].update(values)
                else:
                    merged[section] = values  # from_dict names what is wrong with it
            data = merged
        try:
            return cls.from_dict(data)
        except UserError as exc:
            raise UserError(f"{path}: {exc}") from None

    def replace(self, **sections: Any) -> Config:
        return dataclasses.replace(self, **sections)


def read_config_file(path: Path) -> dict[str, Any]:
    """A config file's sections as it holds them (YAML or JSON), not yet checked against the config."""
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    import yaml

    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config file {path}: {exc}") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise UserError(f"cannot parse config file {path}: {str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of sections")
    return data


#: The most a config may ask for, from a flag or from a file (a checkpoint, an export, a config file):
#: sixteen times the paper's image size, channels and residual blocks. Past them a model takes more
#: memory than any machine has, or a crafted file makes the loader build for minutes before failing.
LIMITS = {
    "model.img_size": 4096,
    "model.ch": 1024,
    "model.n_res": 64,
    "data.resize_margin": 4096,
    "data.num_workers": 256,  # processes: a config.yaml asking for 100000 would fork that many
}
#: torch.manual_seed takes seeds from -2^63 to 2^64 - 1.
SEED_RANGE = (-(2**63), 2**64 - 1)


def check_config(config: Config, *, training: bool = True) -> None:
    """Values the dataclasses cannot reject by type: counts and frequencies out of range, numbers that
    are not finite, sizes past `LIMITS`. `training=False` for a config read with weights (to translate
    or export them), which may name a variant that is not trained here."""
    _check_limits(config)
    if not training:
        return
    minimums = {
        "optim.iterations": (config.optim.iterations, 1),
        "data.batch_size": (config.data.batch_size, 1),
        "data.num_workers": (config.data.num_workers, 0),
        "train.log_every": (config.train.log_every, 1),
        "train.sample_every": (config.train.sample_every, 0),  # 0: no samples
        "train.save_every": (config.train.save_every, 0),  # 0: only when stopping and at the end
        "train.keep_last": (config.train.keep_last, 0),  # 0: keep every checkpoint
        "train.eval_every": (config.train.eval_every, 0),
    }
    for key, (value, minimum) in minimums.items():
        if value is not None and value < minimum:  # None: automatic
            raise UserError(f"config key `{key}` must be at least {minimum}, got {value}")
    low, high = SEED_RANGE
    if not low <= config.train.seed <= high:
        raise UserError(f"config key `train.seed` must be between -2^63 and 2^64 - 1, got {config.train.seed}")
    if config.model.variant != "official":
        raise UserError(
            f"config key `model.variant` is {config.model.variant!r}: only the official networks "
            "are trained here (imported TF weights are for translation and evaluation)"
        )


def _check_limits(config: Config) -> None:
    for key, limit in LIMITS.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value is not None and value > limit:
            raise UserError(f"config key `{key}` is {value}, more than the {limit} this package allows")
    model = config.model
    if model.img_size < 1 or model.ch < 1 or model.n_res < 1:
        raise UserError(
            f"config keys `model.img_size`, `model.ch` and `model.n_res` must be positive, got "
            f"{model.img_size}, {model.ch} and {model.n_res}"
        )
    if config.data.resize_margin < 0:
        raise UserError(f"config key `data.resize_margin` must be 0 or more, got {config.data.resize_margin}")
    # Every number the optimiser and the losses use: finite, and where the maths needs it, positive.
    bounds = {
        "optim.lr": (config.optim.lr, 0.0, False),
        "optim.beta1": (config.optim.beta1, 0.0, True),
        "optim.beta2": (config.optim.beta2, 0.0, True),
        "optim.weight_decay": (config.optim.weight_decay, 0.0, True),
        **{f"loss.{f.name}": (getattr(config.loss, f.name), 0.0, True) for f in fields(config.loss)},
    }
    for key, (value, low, inclusive) in bounds.items():
        if not math.isfinite(value):
            raise UserError(f"config key `{key}` must be a finite number, got {value}")
        if value < low or (value == low and not inclusive):
            raise UserError(
                f"config key `{key}` must be {'at least' if inclusive else 'more than'} {low:g}, got {value}"
            )
    for key in ("optim.beta1", "optim.beta2"):
        if bounds[key][0] >= 1:
            raise UserError(f"config key `{key}` must be less than 1, got {bounds[key][0]}")


def config_keys(sections: Iterable[str] | None = None) -> list[str]:
    """Every key as `section.name`, in the dataclasses' order (of `sections` only, when given)."""
    defaults = Config()
    return [
        f"{section.name}.{f.name}"
        for section in fields(Config)
        if sections is None or section.name in sections
        for f in fields(getattr(defaults, section.name))
    ]


def unknown_key(key: str, sections: Iterable[str] | None = None) -> str:
    """The message for a key that is not in the config: the nearest key (the same name in another
    section, the name it abbreviates or is abbreviated to, as learning_rate and lr, or the closest
    spelling) and the valid keys, of its section or of `sections`. One place for config files,
    `--override` and the library alike."""
    keys = config_keys(sections)
    nearest = _nearest_key(key, keys)
    if nearest is None and "." not in key and sections is None:  # a section misnamed at the top level
        nearest = _nearest_key(key, [f.name for f in fields(Config)])
    text = f"unknown config key '{key}'" + (f": did you mean '{nearest}'?" if nearest else "")
    section = key.rpartition(".")[0]
    in_section = [k for k in keys if k.startswith(f"{section}.")] if section else []
    if in_section:
        return f"{text} (the keys of {section}: {', '.join(k.partition('.')[2] for k in in_section)})"
    if sections is not None:
        return f"{text} (valid keys: {', '.join(keys)})"
    return f"{text} (the config's sections: {', '.join(f.name for f in fields(Config))})"


def _nearest_key(key: str, keys: list[str]) -> str | None:
    name = key.rpartition(".")[2].lower()
    by_name = {k.rpartition(".")[2]: k for k in keys}
    if name in by_name and by_name[name] != key:  # the right name in the wrong section (or none)
        return by_name[name]
    for candidate, full in by_name.items():
        if _initials(name) == candidate or _initials(candidate) == name:
            return full
    # A name cut short or run on (cycle -> cycle_weight, optimizer -> optim), when only one key fits.
    fits = [
        full
        for candidate, full in by_name.items()
        if min(len(name), len(candidate)) >= 3 and (candidate.startswith(name) or name.startswith(candidate))
    ]
    if len(fits) == 1:
        return fits[0]
    close = difflib.get_close_matches(key.lower(), keys, n=1, cutoff=0.75)
    if close:
        return close[0]
    close = difflib.get_close_matches(name, list(by_name), n=1, cutoff=0.75)
    return by_name[close[0]] if close else None


def _initials(name: str) -> str:
    """learning_rate -> lr: how snake_case names are usually shortened."""
    parts = [part for part in name.split("_") if part]
    return "".join(part[0] for part in parts) if len(parts) > 1 else ""


#: Keys added after configs were first saved: a complete file written before them lacks them, and they
#: take their default, which is what the version that wrote it built.
ADDED_KEYS = {"model.g_cam", "model.d_cam", "model.decoder_norm"}


#: Keys that configs of earlier versions hold and this one ignores on reading, so that their files and
#: checkpoints still load, with what took their place (`retired_keys_in` tells a user whose file sets one).
RETIRED_KEYS = {
    "data.world_size": "the number of processes is set where the run is launched (`world_size=N`, or torchrun), "
    "and each checkpoint records it",
}


def retired_keys_in(path: Path) -> list[str]:
    """One notice for each retired key that the config file `path` sets."""
    data = read_config_file(Path(path))
    notices = []
    for key, why in RETIRED_KEYS.items():
        section, name = key.split(".")
        if isinstance(data.get(section), dict) and name in data[section]:
            notices.append(f"{path}: '{key}' is no longer read: {why}")
    return notices


def _require_every_key(path: Path, data: dict[str, Any]) -> None:
    if not data:
        raise UserError(f"config file {path} is empty")
    for section, keys in Config().to_dict().items():
        values = data.get(section)
        missing = [
            key
            for key in keys
            if (not isinstance(values, dict) or key not in values) and f"{section}.{key}" not in ADDED_KEYS
        ]
        if missing:
            raise UserError(f"config file {path} is incomplete (no '{section}.{missing[0]}')")


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise UserError(f"config section '{where or 'root'}' must be a mapping")
    known = {f.name: f for f in fields(cls)}
    data = {name: value for name, value in data.items() if f"{where}.{name}" not in RETIRED_KEYS}
    unknown = sorted(set(data) - set(known))
    if unknown:
        prefix = f"{where}." if where else ""
        raise UserError(unknown_key(f"{prefix}{unknown[0]}"))
    kwargs = {}
    for name, value in data.items():
        f = known[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(type(default), value, f"{where}.{name}" if where else name)
        else:
            kwargs[name] = _coerce(value, f, where)
    return cls(**kwargs)


def _coerce(value: Any, f: dataclasses.Field, where: str) -> Any:
    """Check a scalar against the field's default type; YAML reads 1e-4 as a string, so floats parse."""
    key = f"{where}.{f.name}" if where else f.name
    default = f.default
    if value is None:
        return value
    if default is None:  # optional integers (the discriminator depths)
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"config key '{key}' must be an integer or null, got {value!r}")
        return value
    expected = type(default)
    if expected is bool:
        if not isinstance(value, bool):
            raise UserError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if expected in (int, float):
        if isinstance(value, bool):
            raise UserError(f"config key '{key}' must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"config key '{key}' must be a number, got {value!r}") from None
        if expected is int:
            if number != int(number):
                raise UserError(f"config key '{key}' must be an integer, got {value!r}")
            return int(number)
        return number
    if expected is str and not isinstance(value, str):
        raise UserError(f"config key '{key}' must be a string, got {value!r}")
    choices = getattr(f.type, "__args__", None) if "Literal" in str(f.type) else None
    if choices is None and isinstance(f.type, str) and f.type.startswith("Literal["):
        choices = tuple(c.strip().strip("'\"") for c in f.type[len("Literal[") : -1].split(","))
    if choices and value not in choices:
        raise UserError(f"config key '{key}' must be one of {', '.join(map(str, choices))}, got {value!r}")
    return value
