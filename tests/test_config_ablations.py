"""The ablation keys of the config: saved with every run, read back, and absent from configs that
earlier versions saved (which built the paper's model)."""

from __future__ import annotations

import re

import pytest
import yaml

from ugatit.config import Config, ModelConfig, ablation
from ugatit.errors import UserError


def test_ablation_keys_round_trip_and_are_checked(tmp_path):
    config = Config(model=ablation(ModelConfig(), "no-g-cam+gn"))
    config.save(tmp_path / "config.yaml")
    loaded = Config.load(tmp_path / "config.yaml", complete=True)
    assert (loaded.model.g_cam, loaded.model.d_cam, loaded.model.decoder_norm) == (False, True, "gn")
    (tmp_path / "bad.yaml").write_text("model: {decoder_norm: batch}\n")
    with pytest.raises(UserError, match=re.escape("model.decoder_norm' must be one of adalin, adain, lin, in, ln, gn")):
        Config.load(tmp_path / "bad.yaml")
    (tmp_path / "bad.yaml").write_text("model: {g_cam: 0}\n")
    with pytest.raises(UserError, match=re.escape("model.g_cam' must be true or false")):
        Config.load(tmp_path / "bad.yaml")


def test_a_complete_config_saved_before_the_ablation_keys_still_loads(tmp_path):
    data = Config().to_dict()
    for key in ("g_cam", "d_cam", "decoder_norm"):
        del data["model"][key]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    assert Config.load(tmp_path / "config.yaml", complete=True).model == ModelConfig()
    del data["model"]["ch"]  # a key that was always saved is still required
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=re.escape("incomplete (no 'model.ch')")):
        Config.load(tmp_path / "config.yaml", complete=True)
