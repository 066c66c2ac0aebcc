"""What a resumed run keeps from its checkpoint, what it takes from the settings it is given, and what an
explicit override may change."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from ..config import Config, unknown_key
from ..errors import UserError

#: What a resumed run takes from the config it is given rather than from its checkpoint: how long it
#: runs and how it is executed. Everything else (model, losses, optimiser, data pipeline, seed) stays
#: the checkpoint's, since changing it midway would be a different experiment under the same name.
RESUME_OVERRIDES: dict[str, tuple[str, ...]] = {
    "optim": ("iterations",),
    "data": ("num_workers",),
    "train": (
        "device",
        "precision",
        "channels_last",
        "compile",
        "eager",
        "log_every",
        "sample_every",
        "save_every",
        "keep_last",
        "eval_every",
    ),
}

#: Which model a run trains, by the paper's ablations: a resumed run given another value is refused
#: rather than continued with the checkpoint's (a silent fallback would train the wrong variant under
#: the name the user asked for).
REFUSED_ON_RESUME = (("model", "g_cam"), ("model", "d_cam"), ("model", "decoder_norm"))

#: What `overrides` may change when resuming, explicitly and on the record (log.jsonl, config.yaml): the
#: optimiser and the loss weights, e.g. a smaller learning rate to continue a run that diverged. The
#: architecture (the weights would not fit), the data pipeline and the seed are the run's identity.
OVERRIDABLE_SECTIONS = ("optim", "loss")


def resume_config(saved: Config, given: Config, keys: Collection[str] | None = None) -> tuple[Config, list[str]]:
    """The config of a resumed run: `saved` with `RESUME_OVERRIDES` taken from `given`. Also returns
    the other keys where `given` differs (they are ignored; callers say so). A `given` of another
    ablation (`REFUSED_ON_RESUME`) is refused. `keys` ("optim.iterations", ...): the only keys of
    `given` that were chosen, the others counting as not given (None: all of them)."""
    merged, wanted = saved.to_dict(), given.to_dict()
    if keys is not None:
        wanted = {
            section: {k: v for k, v in values.items() if f"{section}.{k}" in keys} for section, values in wanted.items()
        }
    for section, key in REFUSED_ON_RESUME:
        if key in wanted[section] and wanted[section][key] != merged[section][key]:
            raise UserError(
                f"cannot resume with `{section}.{key}={wanted[section][key]}`: the run trains "
                f"`{section}.{key}={merged[section][key]}` (a different model; start a new run for it)"
            )
    for section, names in RESUME_OVERRIDES.items():
        for key in names:
            if key in wanted[section]:
                merged[section][key] = wanted[section][key]
    ignored = [
        f"{section}.{key}"
        for section, values in wanted.items()
        for key, value in values.items()
        # None is "automatic" (the discriminator depths): the saved config holds what it resolved to
        if value is not None and merged[section][key] != value
    ]
    return Config.from_dict(merged), ignored


def apply_overrides(config: Config, overrides: Mapping[str, Any]) -> tuple[Config, list[dict[str, Any]]]:
    """`config` with `overrides` ({"optim.lr": 5e-5, ...}) applied, and the record of each change:
    {"key", "from", "to"}. Keys outside `OVERRIDABLE_SECTIONS` are refused."""
    merged = config.to_dict()
    for key in overrides:
        section, _, name = key.partition(".")
        if section not in merged or name not in merged[section]:
            raise UserError(f"`overrides` names an {unknown_key(key, OVERRIDABLE_SECTIONS)}")
        if section not in OVERRIDABLE_SECTIONS:
            raise UserError(
                f"'{key}' cannot be changed on resume: `overrides` changes only "
                f"{' and '.join(s + '.*' for s in OVERRIDABLE_SECTIONS)}"
            )
        merged[section][name] = overrides[key]
    new = Config.from_dict(merged)  # checks and converts the values' types
    before, after = config.to_dict(), new.to_dict()
    changes = []
    for key in overrides:
        section, _, name = key.partition(".")
        if before[section][name] != after[section][name]:
            changes.append({"key": key, "from": before[section][name], "to": after[section][name]})
    return new, changes
