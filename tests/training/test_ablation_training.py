"""Every ablation trains on the CPU and round-trips: checkpoint, resume, translation, our export, and
TorchScript (ONNX for one variant without CAM). No-CAM variants log no CAM loss terms; a run cannot be
resumed as another variant."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import tiny
from ugatit.cli import main
from ugatit.config import ABLATIONS, Config, DataConfig, ModelConfig, OptimConfig, TrainConfig, ablation
from ugatit.errors import UserError
from ugatit.training import train
from ugatit.training.run_dir import EXPORT_FILE, LOG_FILE, RHO_PLOT
from ugatit.training.step import LOSS_NAMES, loss_names
from ugatit.translate import translate_images
from ugatit.weights import load_model
from ugatit.weights.deploy import export_generator

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
CAM_TERMS = {name for name in LOSS_NAMES if "cam" in name}


def config(variant: str, iterations: int) -> Config:
    return Config(
        model=ablation(ModelConfig(img_size=32, ch=4, n_res=1, light=True), variant),
        optim=OptimConfig(iterations=iterations),
        data=DataConfig(num_workers=0, batch_size=2),
        train=TrainConfig(device="cpu", log_every=1, sample_every=0, save_every=1, keep_last=1),
    )


def noise_folder(folder: Path, count: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for name, seed in (("trainA", 1), ("trainB", 2), ("testA", 3), ("testB", 4)):
        noise_folder(root / name, 4, seed)
    return root


def logged_terms(run_dir: Path) -> set[str]:
    records = [json.loads(line) for line in (run_dir / LOG_FILE).read_text().splitlines()]
    return {key for record in records if "event" not in record for key in record if key in LOSS_NAMES}


@pytest.mark.parametrize("variant", list(ABLATIONS))
def test_each_variant_trains_resumes_translates_and_exports(variant, data, tmp_path):
    run = tmp_path / "run"
    first = train(config(variant, 2), data / "trainA", data / "trainB", run, progress=False, tensorboard=False)
    assert first.step == 2
    resumed = train(
        config(variant, 3), data / "trainA", data / "trainB", run, resume=True, progress=False, tensorboard=False
    )
    assert resumed.step == 3 and resumed.config.model == first.config.model

    # The loss terms are the variant's: no CAM term at all without CAM.
    expected = set(loss_names(resumed.config.model))
    assert logged_terms(run) == expected == set(resumed.losses)
    cfg = resumed.config.model
    if not cfg.g_cam:
        assert not {"G_cam_loss_A", "G_cam_loss_B"} & expected
    if not cfg.d_cam:
        assert not {n for n in CAM_TERMS if "_ad_cam_" in n} & expected
    if cfg.g_cam and cfg.d_cam:
        assert expected == set(LOSS_NAMES)
    assert (run / RHO_PLOT).is_file() == (cfg.decoder_norm in ("adalin", "lin"))

    # The checkpoint, and our export, rebuild the variant and translate alike.
    model, saved = load_model(run, discriminators=True)
    assert saved.model == cfg and model.has_discriminators
    exported, exported_config = load_model(run / EXPORT_FILE)
    assert exported_config.model == cfg
    images = [Image.open(p).convert("RGB") for p in sorted((data / "testA").iterdir())]
    ours = translate_images(model, images, "a2b")
    theirs = translate_images(exported, images, "a2b")
    assert (ours[0].heatmap is None) == (not cfg.g_cam) and (ours[0].cam_logit is None) == (not cfg.g_cam)
    for a, b in zip(ours, theirs):
        # The export stores fp16 weights: the 8-bit outputs differ by a few levels at most (measured:
        # at most 2 of 255 on these tiny models).
        assert np.abs(np.asarray(a.image, int) - np.asarray(b.image, int)).max() <= 4

    # TorchScript: the deployed graph computes what the model does.
    path = export_generator(model, "a2b", "torchscript", tmp_path / "g.pt")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    outputs = torch.jit.load(str(path))(x)
    expected_outputs = [t for t in model.translate(x, "a2b") if t is not None]
    assert len(outputs) == len(expected_outputs) == (3 if cfg.g_cam else 1)
    for got, want in zip(outputs, expected_outputs):
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()  # the same ops, fp32


def test_onnx_of_a_variant_without_generator_cam_outputs_the_translation_alone(data, tmp_path, need):
    ort = need("onnxruntime")
    need("onnxscript")
    torch.manual_seed(0)
    from ugatit.nn.model import UGATIT

    model = UGATIT(ablation(ModelConfig(img_size=32, ch=4, n_res=1, light=True), "no-g-cam+gn")).eval()
    path = export_generator(model, "b2a", "onnx", tmp_path / "g.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["translation"]
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    (got,) = session.run(None, {"image": x.numpy()})
    # Another runtime's kernels: 1e-4, the tolerance of tests/weights/test_deploy.py.
    assert np.abs(got - model.translate(x, "b2a").image.numpy()).max() < 1e-4


def test_a_run_cannot_be_resumed_as_another_variant(data, tmp_path):
    run = tmp_path / "run"
    train(config("full", 1), data / "trainA", data / "trainB", run, progress=False, tensorboard=False)
    for variant, key in (("no-g-cam", "model.g_cam"), ("no-d-cam", "model.d_cam"), ("gn", "model.decoder_norm")):
        with pytest.raises(UserError, match=f"cannot resume with `{key}="):
            train(config(variant, 2), data / "trainA", data / "trainB", run, resume=True, progress=False)


def test_the_train_command_trains_an_ablation_and_inspect_describes_it(data, tmp_path, capsys):
    run = tmp_path / "run"
    common = [str(data), "--out", str(run), "--img-size", "32", "--ch", "4", "--n-res", "1", "--light"]
    common += ["--workers", "0", "--no-progress", "--device", "cpu"]
    assert main(["train", *common, "--iters", "2", "--no-d-cam", "--decoder-norm", "lin"]) == 0
    saved = Config.load(run / "config.yaml", complete=True).model
    assert (saved.g_cam, saved.d_cam, saved.decoder_norm) == (True, False, "lin")

    capsys.readouterr()
    assert main(["train", *common, "--iters", "3", "--resume", "--decoder-norm", "in"]) == 2
    assert "cannot resume with --decoder-norm in: the run trains --decoder-norm lin" in capsys.readouterr().err

    plot, report = tmp_path / "rho.svg", tmp_path / "inspect.json"
    assert main(["inspect", str(run), "--plot", str(plot), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "training checkpoint" in out and "iteration: 2" in out and "variant: no-d-cam+lin" in out
    assert "discriminators without CAM" in out and "LIN (rho mix, learned affine)" in out
    assert "genA2B residual" in out and "genB2A up-sampling" in out  # the rho summary
    data_out = json.loads(report.read_text())
    assert data_out["variant"] == "no-d-cam+lin" and data_out["step"] == 2
    counts, paper = data_out["parameters"], data_out["parameters_paper_model"]
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")
    assert counts["disGA"] < paper["disGA"] and counts["genA2B"] < paper["genA2B"]
    assert [row["label"] for row in data_out["rho_layers"][:4]] == ["res1.1", "res1.2", "up1", "up2"]
    svg = plot.read_text()
    assert svg.startswith("<svg") and "res1.1" in svg and "up-sampling" in svg and "genB2A" in svg
    # the same plot the run folder got beside its checkpoint
    assert (run / RHO_PLOT).read_text().count("<circle") == svg.count("<circle")


def test_inspect_of_a_variant_without_rho_and_of_an_official_checkpoint(tmp_path, capsys):
    from ugatit.nn.model import UGATIT

    model = tiny()
    torch.save(model.official_state_dict(), tmp_path / "official.pt")
    assert main(["inspect", str(tmp_path / "official.pt")]) == 0
    out = capsys.readouterr().out
    assert "official PyTorch checkpoint" in out and "not recorded" in out and "variant: full (the paper's model)" in out
    assert "(+" not in out and "(-" not in out  # the paper's model: no difference to report
    from ugatit.weights.export import export_generators

    variant = UGATIT(replace(model.config, decoder_norm="gn", n_layers_global=None, n_layers_local=None))
    export_generators(variant, Config(model=variant.config), tmp_path / "gn.safetensors")
    assert main(["inspect", str(tmp_path / "gn.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "variant: gn" in out and "rho: none" in out and "genA2B" in out and "disGA" not in out
