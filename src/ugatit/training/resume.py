"""What a resumed run keeps from its checkpoint and what it takes from the settings it is given."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..config import Config
from ..weights import checkpoints
from .run_dir import CONFIG_FILE

#: What a resumed run takes from the config it is given rather than from its checkpoint: how long it
#: runs and how it is executed. Everything else (model, losses, optimiser, data pipeline, seed) stays
#: the checkpoint's, since changing it midway would be a different experiment under the same name.
RESUME_OVERRIDES: dict[str, tuple[str, ...]] = {
    "optim": ("iterations",),
    "data": ("num_workers",),
    "train": ("device", "precision", "channels_last", "compile", "eager",
              "log_every", "sample_every", "save_every", "keep_last", "eval_every"),
}  # fmt: skip

#: Exit status of a process stopped by each signal (128 + signal number), for the CLI.

def resume_config(saved: Config, given: Config) -> tuple[Config, list[str]]:
    """The config of a resumed run: `saved` with `RESUME_OVERRIDES` taken from `given`. Also returns
    the other keys where `given` differs (they are ignored; callers say so)."""
    merged, wanted = saved.to_dict(), given.to_dict()
    for section, keys in RESUME_OVERRIDES.items():
        for key in keys:
            merged[section][key] = wanted[section][key]
    ignored = [
        f"{section}.{key}"
        for section, values in wanted.items()
        for key, value in values.items()
        # None is "automatic" (the discriminator depths): the saved config holds what it resolved to
        if value is not None and merged[section][key] != value
    ]
    return Config.from_dict(merged), ignored


def saved_run_config(run_dir: str | Path) -> Optional[Config]:
    """The config a run directory was last trained with (its config.yaml, else its latest checkpoint's),
    or None when it holds neither: the base a resumed run's settings are changed from."""
    run_dir = Path(run_dir)
    if (run_dir / CONFIG_FILE).is_file():
        return Config.load(run_dir / CONFIG_FILE)
    latest = checkpoints.latest_checkpoint(run_dir)
    if latest is None:
        return None
    return Config.from_dict(checkpoints.load_training_checkpoint(latest)["config"])


