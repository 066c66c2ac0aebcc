"""The README's commands for released weights run as written, on stand-ins under the released names: the
golden TF checkpoints (the authors' own graph code, tests/assets/golden-tf) in the folder the authors'
code names, PaddleGAN's golden weights as ugatit_light.pdparams. Then the ONNX example, taken from the
README, runs on the file the README's export command writes, with torch unimportable."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ASSETS = Path(__file__).parent / "assets"
TF_FOLDER = "UGATIT_selfie2anime_lsgan_4resblock_6dis_1_1_10_10_1000_sn_smoothing"


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def commands(text: str) -> list[list[str]]:
    """The `ugatit` lines of the section's bash blocks, without their comments."""
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, re.S) for line in block.splitlines()]
    return [shlex.split(line, comments=True) for line in lines if line.startswith("ugatit ")]


def ugatit(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    result = subprocess.run(
        [sys.executable, "-m", "ugatit", *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{shlex.join(args)}\n{result.stderr}"
    return result


def tf_checkpoint(mode: str, folder: Path) -> None:
    """The golden TF checkpoint of `mode` in `folder`, which is named as the released one."""
    (source,) = (ASSETS / "golden-tf" / mode / "checkpoint").iterdir()
    shutil.copytree(source, folder)


def test_the_released_weights_section_translates_a_selfie_with_each_model(tmp_path, need):
    need("cv2")
    from ugatit.translate.faces import crop_to_face

    tf_checkpoint("full", tmp_path / TF_FOLDER)  # the authors' release is a full model
    shutil.copy(ASSETS / "golden-paddle" / "light" / "epoch_1_weight.pdparams", tmp_path / "ugatit_light.pdparams")
    Image.fromarray(need("skimage.data").astronaut()).save(tmp_path / "selfie.jpg", quality=95)
    crop = crop_to_face(Image.open(tmp_path / "selfie.jpg")).crop

    lines = commands(section("A real result in two commands"))
    assert [line[:2] for line in lines] == [["ugatit", "convert"], ["ugatit", "translate"], ["ugatit", "translate"]]
    for line in lines:
        ugatit(line, tmp_path)
        if line[1] == "translate":
            # The translated face square, at the square's size, written where the README says.
            with Image.open(tmp_path / "anime" / "selfie.png") as out:
                assert out.size == (crop.width, crop.height) != Image.open(tmp_path / "selfie.jpg").size
            assert (tmp_path / "anime" / "index.html").is_file()
            shutil.rmtree(tmp_path / "anime")
    assert (tmp_path / "selfie2anime.safetensors").is_file()


def test_the_deployment_section_and_its_onnx_example_run_as_written(tmp_path, need):
    need("onnxscript")
    need("onnxruntime")
    # The light golden checkpoint under the released name: the README's ONNX example feeds 256 x 256,
    # which a full model trained at 96 px (the golden full one) refuses.
    tf_checkpoint("light", tmp_path / TF_FOLDER)
    shutil.copy(ASSETS / "golden-paddle" / "light" / "epoch_1_weight.pdparams", tmp_path / "ugatit_light.pdparams")
    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(tmp_path / "photos" / "street.png")
    for domain in ("trainA", "trainB"):
        (tmp_path / "my_faces2anime" / domain).mkdir(parents=True)
        for i in range(2):
            image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(image).save(tmp_path / "my_faces2anime" / domain / f"{i}.png")

    text = section("Weights from elsewhere, and deployment")
    lines = commands(text)
    assert [line[1] for line in lines] == ["convert", "translate", "train", "export"]
    for line in lines:
        if line[1] == "train":
            # As written it fine-tunes for the paper's 1M iterations: one is enough to show it starts.
            line = [*line, "--iters", "1", "--device", "cpu", "--workers", "0", "--no-progress"]
        ugatit(line, tmp_path)
    assert Image.open(tmp_path / "anime" / "street.png").size == (70, 50)
    assert (tmp_path / "runs" / "my_faces2anime" / "checkpoints" / "step_00000001.pt").is_file()

    # The example, verbatim, on the file the export command wrote.
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "onnxruntime" in b)
    onnx_name = re.search(r'InferenceSession\("([^"]+)"', block).group(1)
    assert (tmp_path / onnx_name).is_file(), f"the example opens {onnx_name}, which the export command did not write"
    photo_name = re.search(r'Image.open\("([^"]+)"', block).group(1)
    Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)).save(tmp_path / photo_name)
    (tmp_path / "example.py").write_text(block)
    guard = "import sys; sys.modules['torch'] = None; exec(open('example.py').read())"  # any torch import fails
    run = subprocess.run([sys.executable, "-c", guard], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "domain logits (GAP, GMP):" in run.stdout and "(1, 1, 64, 64)" in run.stdout

    # What the converted model makes of the same photo through the same 8-bit steps: ONNX Runtime and
    # eager PyTorch differ by ~1e-5 (docs/weights.md), so a rounded level may differ by one.
    import torch

    from ugatit.weights import load_model

    model, _ = load_model(tmp_path / "selfie2anime.safetensors")
    with Image.open(tmp_path / photo_name) as photo:
        x = np.asarray(photo.convert("RGB").resize((256, 256), Image.BILINEAR), np.float32) / 127.5 - 1
        size = photo.size
    with torch.no_grad():
        fake = model.translate(torch.from_numpy(x).permute(2, 0, 1)[None], "a2b").image[0].permute(1, 2, 0).numpy()
    want = Image.fromarray(((fake + 1) * 127.5).round().clip(0, 255).astype(np.uint8)).resize(size, Image.BICUBIC)
    written = re.findall(r'\.save\("([^"]+)"\)', block)[-1]
    with Image.open(tmp_path / written) as out:
        assert out.size == size
        assert np.abs(np.asarray(out, dtype=int) - np.asarray(want, dtype=int)).max() <= 1
