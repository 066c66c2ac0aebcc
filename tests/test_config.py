from __future__ import annotations

import pytest

from ugatit.config import Config
from ugatit.errors import UserError


def test_defaults_are_the_papers():
    c = Config()
    assert (c.model.img_size, c.model.ch, c.model.n_res, c.model.light) == (256, 64, 4, False)
    assert (c.loss.adv_weight, c.loss.cycle_weight, c.loss.identity_weight, c.loss.cam_weight) == (1, 10, 10, 1000)
    assert (c.optim.lr, c.optim.beta1, c.optim.beta2, c.optim.weight_decay) == (1e-4, 0.5, 0.999, 1e-4)
    assert (c.optim.iterations, c.optim.decay, c.data.batch_size) == (1_000_000, True, 1)
    assert c.model.init == "normal"


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_round_trip_through_files(tmp_path, suffix):
    c = Config()
    c.model.light, c.model.img_size, c.optim.lr, c.model.n_layers_global = True, 128, 2e-4, 6
    path = tmp_path / f"cfg{suffix}"
    c.save(path)
    assert Config.load(path) == c


def test_partial_file_keeps_defaults_and_reads_yaml_floats(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("model:\n  light: true\noptim:\n  lr: 1e-4\n  iterations: 2000\n")
    c = Config.load(path)
    assert c.model.light and c.model.ch == 64 and c.optim.lr == 1e-4 and c.optim.iterations == 2000


@pytest.mark.parametrize(
    "text,match",
    [
        ("model:\n  lite: true\n", "unknown config key 'model.lite'"),
        ("modle: {}\n", "unknown config key 'modle'"),
        ("model:\n  ch: many\n", "'model.ch' must be a number"),
        ("model:\n  ch: 2.5\n", "'model.ch' must be an integer"),
        ("model:\n  light: 3\n", "'model.light' must be true or false"),
        ("train:\n  precision: fp8\n", "'train.precision' must be one of fp32, bf16"),
        ("model: [1, 2]\n", "section 'model' must be a mapping"),
        ("model: {light: true\n", "cannot parse config file"),
    ],
)
def test_bad_files_name_the_key(tmp_path, text, match):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        Config.load(path)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        Config.load(tmp_path / "nope.yaml")


def test_a_file_changes_only_its_own_keys_of_a_base(tmp_path):
    base = Config()
    base.model.light, base.optim.iterations = True, 500
    path = tmp_path / "more.yaml"
    path.write_text("optim:\n  iterations: 2000\n")
    merged = Config.load(path, base=base)
    assert merged.optim.iterations == 2000 and merged.model.light and merged.optim.lr == 1e-4
    assert base.optim.iterations == 500  # the base is not modified
    path.write_text("optim:\n  iteratons: 3\n")
    with pytest.raises(UserError, match=r"unknown config key 'optim.iteratons'"):
        Config.load(path, base=base)


@pytest.mark.parametrize(
    "section, key, value, match",
    [
        ("model", "img_size", 4100, r"`model.img_size` is 4100, more than the 4096"),
        ("model", "ch", 20000, r"`model.ch` is 20000, more than the 1024"),
        ("model", "n_res", 100000, r"`model.n_res` is 100000, more than the 64"),
        ("model", "ch", 0, r"must be positive"),
        ("data", "num_workers", 100000, r"`data.num_workers` is 100000, more than the 256"),
        ("data", "resize_margin", -1, r"`data.resize_margin` must be 0 or more"),
        ("optim", "lr", float("nan"), r"`optim.lr` must be a finite number"),
        ("optim", "lr", 0.0, r"`optim.lr` must be more than 0"),
        ("optim", "beta2", 1.0, r"`optim.beta2` must be less than 1"),
        ("optim", "weight_decay", float("inf"), r"`optim.weight_decay` must be a finite number"),
        ("loss", "cam_weight", -1.0, r"`loss.cam_weight` must be at least 0"),
        ("train", "seed", 2**64, r"`train.seed` must be between -2\^63 and 2\^64 - 1"),
    ],
)
def test_check_config_holds_every_value_to_its_bounds(section, key, value, match):
    """What a flag, a config file, a checkpoint or an export may ask for (docs/reliability.md, Limits)."""
    from dataclasses import replace

    from ugatit.config import check_config

    config = Config()
    check_config(config)
    changed = config.replace(**{section: replace(getattr(config, section), **{key: value})})
    with pytest.raises(UserError, match=match):
        check_config(changed)


def test_weights_configs_skip_only_the_training_checks():
    from dataclasses import replace

    from ugatit.config import check_config

    tf = Config().replace(model=replace(Config().model, variant="tf"))
    check_config(tf, training=False)  # a TF model may be translated with
    with pytest.raises(UserError, match="only the official networks are trained here"):
        check_config(tf)
    with pytest.raises(UserError, match="more than the 64"):
        check_config(tf.replace(model=replace(tf.model, n_res=65)), training=False)


def test_configs_of_earlier_versions_with_data_world_size_still_load(tmp_path):
    """`data.world_size` left the config (the processes are the launch's): a config.yaml or checkpoint
    written before still loads, complete, and the key is dropped; any other unknown key is still refused."""
    written = Config().to_dict()
    assert "world_size" not in written["data"]
    written["data"]["world_size"] = 2
    assert Config.from_dict(written) == Config()
    path = tmp_path / "config.yaml"
    path.write_text(__import__("yaml").safe_dump(written))
    assert Config.load(path, complete=True) == Config()
    written["data"]["world_sizes"] = 2
    with pytest.raises(UserError, match=r"unknown config key 'data\.world_sizes'"):
        Config.from_dict(written)


def test_a_checkpoint_says_how_many_processes_trained_it():
    """Its data position records them; a checkpoint of an earlier version has them in its config."""
    from ugatit.weights.checkpoints import saved_world_size

    assert saved_world_size({"data": {"world_size": 3}, "config": {"data": {}}}) == 3
    assert saved_world_size({"data": {"seed": 0}, "config": {"data": {"world_size": 2}}}) == 2
    assert saved_world_size({"data": {}, "config": {"data": {}}}) == 1
