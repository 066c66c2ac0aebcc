"""Checkpoint files: atomic writes, loading damaged or foreign files, the export, RNG state."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ugatit.config import Config, ModelConfig
from ugatit.errors import UserError
from ugatit.nn.model import GENERATORS, NETWORK_NAMES, UGATIT
from ugatit.training.step import TrainingStep
from ugatit.utils.files import atomic_write
from ugatit.utils.rng import capture_rng_state, restore_rng_state
from ugatit.weights import checkpoints, load_model
from ugatit.weights.checkpoints import (
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_training_checkpoint,
    prune_checkpoints,
    save_training_checkpoint,
)
from ugatit.weights.export import export_generators

GOLDEN_LIGHT = Path(__file__).parents[1] / "assets" / "ugatit_official_ch4_res2_img96_light.pt"


@pytest.fixture(scope="module")
def trained() -> tuple[UGATIT, TrainingStep, Config]:
    """A tiny model after one training step, so that the optimisers have state."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: on two busy cores, a second thread makes this 10x slower
    torch.manual_seed(0)
    config = Config(model=ModelConfig(img_size=32, ch=2, n_res=1, light=True))
    model = UGATIT(config.model)
    step = TrainingStep(model, config.loss, config.optim)
    step(torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1, 1)
    torch.set_num_threads(threads)
    return model, step, config.replace(model=model.config)


def save(trained, path: Path, step: int = 1) -> Path:
    model, train_step, config = trained
    return save_training_checkpoint(
        path,
        model=model,
        optimizers=train_step.state_dict(),
        config=config,
        step=step,
        data_state={"seed": 0, "A": {"epoch": 0, "index": 1, "size": 5}},
        extra={"note": "x"},
    )


def assert_same_networks(a: UGATIT, b: UGATIT, names=NETWORK_NAMES) -> None:
    for name in names:
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{name}.{key}"


def one_line_error(call) -> str:
    with pytest.raises(UserError) as error:
        call()
    message = str(error.value)
    assert message and "\n" not in message
    return message


# --- Atomic writes --------------------------------------------------------------------------------------


def test_atomic_write_leaves_only_the_file(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write(target, lambda tmp: tmp.write_bytes(b"new"))
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_an_interrupted_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"half of the ne")
        raise KeyboardInterrupt  # Ctrl-C, or a full disk, in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_an_interrupted_checkpoint_save_keeps_the_previous_checkpoint(trained, tmp_path, monkeypatch):
    path = save(trained, tmp_path / "ckpt.pt", step=1)
    real_save = torch.save

    def crash(obj, f, *args, **kwargs):
        real_save({"partial": torch.zeros(3)}, f)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save(trained, path, step=2)
    monkeypatch.undo()
    assert load_training_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


# --- Training checkpoints -------------------------------------------------------------------------------


def test_training_checkpoint_round_trip(trained, tmp_path):
    model, train_step, config = trained
    state = load_training_checkpoint(save(trained, tmp_path / "c.pt", step=7))
    assert state["format"] == checkpoints.TRAIN_FORMAT and state["step"] == 7
    assert Config.from_dict(state["config"]) == config
    assert state["data"]["A"]["index"] == 1 and state["extra"] == {"note": "x"}
    restored = UGATIT(config.model)
    restored.load_official_state_dict(state["networks"])
    assert_same_networks(model, restored)
    again = TrainingStep(restored, config.loss, config.optim)
    again.load_state_dict(state["optimizers"])
    assert again.state_dict()["G_optim"]["state"][0]["exp_avg"].equal(
        train_step.state_dict()["G_optim"]["state"][0]["exp_avg"]
    )


def test_a_run_directory_means_its_latest_checkpoint(trained, tmp_path):
    for step in (2, 10, 4):
        save(trained, checkpoint_path(tmp_path, step), step=step)
    (tmp_path / "checkpoints" / "best.pt").write_bytes(b"")  # not a step checkpoint
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002.pt", "step_00000004.pt", "step_00000010.pt"]
    assert load_training_checkpoint(tmp_path)["step"] == 10
    prune_checkpoints(tmp_path, keep_last=1, protect=(checkpoint_path(tmp_path, 2),))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002.pt", "step_00000010.pt"]
    assert (tmp_path / "checkpoints" / "best.pt").exists()
    assert latest_checkpoint(tmp_path / "nothing") is None
    (tmp_path / "empty_run").mkdir()
    assert "no checkpoint in" in one_line_error(lambda: load_training_checkpoint(tmp_path / "empty_run"))
    assert "not found" in one_line_error(lambda: load_training_checkpoint(tmp_path / "missing.pt"))


@pytest.fixture
def damaged(trained, tmp_path) -> dict[str, Path]:
    good = save(trained, tmp_path / "good.pt").read_bytes()
    files = {
        "truncated": good[: len(good) // 2],
        "cut at the end": good[:-100],
        "corrupted header": b"\x00" * 64 + good[64:],
        "garbage": np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "empty": b"",
        "text": b"model: {ch: 4}\n",
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.pt"
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize("kind", ["truncated", "cut at the end", "corrupted header", "garbage", "empty", "text"])
def test_damaged_files_are_one_line_errors(damaged, kind):
    path = damaged[kind]
    assert str(path) in one_line_error(lambda: load_training_checkpoint(path))
    assert str(path) in one_line_error(lambda: load_model(path))


def test_files_of_the_wrong_kind_are_one_line_errors(trained, tmp_path):
    torch.save({"hello": torch.zeros(2)}, tmp_path / "other.pt")
    assert "not a ugatit training checkpoint" in one_line_error(lambda: load_training_checkpoint(tmp_path / "other.pt"))
    assert "neither" in one_line_error(lambda: load_model(tmp_path / "other.pt"))

    torch.save(Config(), tmp_path / "pickled_object.pt")  # arbitrary objects are never unpickled
    assert "never unpickled" in one_line_error(lambda: load_training_checkpoint(tmp_path / "pickled_object.pt"))

    model, _, config = trained
    export = export_generators(model, config, tmp_path / "gen.safetensors")
    one_line_error(lambda: load_training_checkpoint(export))  # an export holds no training state
    assert "not found" in one_line_error(lambda: load_model(tmp_path / "missing.pt"))
    (tmp_path / "empty_run").mkdir()
    assert "holds no checkpoint" in one_line_error(lambda: load_model(tmp_path / "empty_run"))


# --- Export ---------------------------------------------------------------------------------------------


def test_export_is_half_size_and_translates_like_the_model(trained, tmp_path):
    model, _, config = trained
    path = export_generators(model, config, tmp_path / "export" / "gen.safetensors")
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert Config.from_dict(json.loads(path.with_suffix(".json").read_text())) == config

    generator_values = sum(t.numel() for name in GENERATORS for t in getattr(model, name).state_dict().values())
    size = path.stat().st_size
    assert generator_values * 2 <= size < generator_values * 2 + 64 * 1024  # fp16 tensors plus a header

    loaded, loaded_config = load_model(path)
    assert loaded_config.model == config.model and not loaded.has_discriminators
    for name in GENERATORS:
        for key, value in getattr(model, name).state_dict().items():
            torch.testing.assert_close(getattr(loaded, name).state_dict()[key], value, rtol=1e-3, atol=1e-4)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(loaded.translate(x, "a2b").image, model.translate(x, "a2b").image, rtol=0, atol=2e-2)

    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(path.read_bytes()[:1000])
    one_line_error(lambda: load_model(truncated))


def test_load_model_of_a_training_checkpoint_and_of_a_run_directory(trained, tmp_path):
    model, _, config = trained
    save(trained, checkpoint_path(tmp_path, 3), step=3)
    for source in (checkpoint_path(tmp_path, 3), tmp_path):
        loaded, loaded_config = load_model(source, discriminators=True)
        assert loaded_config == config and not loaded.training
        assert_same_networks(model, loaded)
    generators_only, _ = load_model(tmp_path)
    assert not generators_only.has_discriminators
    assert_same_networks(model, generators_only, GENERATORS)


def test_load_model_of_an_official_checkpoint(tmp_path):
    """The official code's own six state dicts (the golden file's weights); the config is read off shapes."""
    official = torch.load(GOLDEN_LIGHT, weights_only=True)["step1_params"]
    path = tmp_path / "selfie2anime_params_0100000.pt"
    torch.save(official, path)
    loaded, config = load_model(path, discriminators=True)
    assert (config.model.ch, config.model.n_res, config.model.light) == (4, 2, True)
    assert (config.model.n_layers_global, config.model.n_layers_local) == (7, 5)
    for name in NETWORK_NAMES:
        state = getattr(loaded, name).state_dict()
        for key, value in official[name].items():
            assert torch.equal(state[key], value), f"{name}.{key}"


# --- RNG state ------------------------------------------------------------------------------------------


def draws() -> tuple:
    return torch.rand(4).tolist(), np.random.rand(4).tolist(), [random.random() for _ in range(4)], np.random.randn()


def test_rng_state_round_trip_through_a_checkpoint(trained, tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    path = save(trained, tmp_path / "rng.pt")  # captures the RNG states
    expected = draws()
    draws()  # move everything on
    restore_rng_state(load_training_checkpoint(path)["rng"])
    assert draws() == expected

    state = capture_rng_state()
    expected = draws()
    restore_rng_state(state)
    assert draws() == expected
