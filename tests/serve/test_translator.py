"""What one press of the app's button does, called directly (no web server): limits, bad files and the
words the page shows. The same code answers the browser and API tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import tiny
from ugatit.serve import translator as translator_module
from ugatit.serve.translator import MAX_IMAGES, WebTranslator, source_probability
from ugatit.translate import translate_images


@pytest.fixture
def web(light_model, tmp_path) -> WebTranslator:
    return WebTranslator(light_model, tmp_path / "app", checkpoint_name="tiny.safetensors")


def test_translates_like_the_library_and_writes_only_in_its_folder(web, light_model, tmp_path, noise_image):
    photo = noise_image(tmp_path / "photo.png", 40, 30)
    answer = web([photo], "b2a", size=36)
    assert answer.message.startswith("Translated 1 image from domain B to domain A at 36x36 px")
    [(output, caption)] = answer.outputs
    assert caption == "photo.png: B to A"
    expected = translate_images(light_model, [Image.open(photo)], "b2a", size=36)[0]
    assert np.array_equal(np.asarray(Image.open(output)), np.asarray(expected.image))
    assert Image.open(answer.attention[0][0]).size == (40, 30)
    assert answer.downloads == [output, answer.attention[0][0]]
    for path in [output, answer.attention[0][0], answer.inputs[0][0]]:
        assert (tmp_path / "app") in Path(path).parents
    p = source_probability(expected.cam_logit)
    assert "| photo.png | " in answer.verdicts and f"| {p:.3f} |" in answer.verdicts
    assert "P(domain B)" in answer.verdicts


def test_source_probability_averages_the_two_heads():
    assert source_probability([0.0, 0.0]) == 0.5
    assert source_probability([100.0, -100.0]) == pytest.approx(0.5)
    assert source_probability([3.0, 1.0]) == pytest.approx((1 / (1 + np.exp(-3)) + 1 / (1 + np.exp(-1))) / 2)


def test_refusals_are_messages(web, tmp_path, noise_image, monkeypatch):
    fake = tmp_path / "notes.png"
    fake.write_text("this is text, not a PNG")
    good = noise_image(tmp_path / "good.png", 20, 20)

    answer = web([fake])
    assert answer.message == "**Not translated:** notes.png: not an image, or a format Pillow cannot read."
    assert answer.outputs == [] and answer.downloads == []

    mixed = web([good, fake])
    assert mixed.message.startswith("Translated 1 image") and "notes.png: not an image" in mixed.message

    assert "at most 8" in web([good] * (MAX_IMAGES + 1)).message
    assert web([]).message.startswith("Upload an image")
    assert (
        web([good], "sideways").message == "**Not translated:** the direction must be one of a2b, b2a, got 'sideways'"
    )
    assert "multiple of 4" in web([good], size=34).message
    assert "limit of 1024 px" in web([good], size=2048).message

    monkeypatch.setattr(translator_module, "MAX_PIXELS", 399)
    assert web([good]).message == "**Not translated:** good.png: 20x20 px, over the 0-megapixel limit."
    monkeypatch.setattr(translator_module, "MAX_FILE_MB", 0.0001)
    assert "MB, over the 0.0001 MB limit" in web([good]).message


def test_face_crop_without_a_face_says_so(web, tmp_path, noise_image, need):
    need("cv2")
    answer = web([noise_image(tmp_path / "noise.png", 48, 40)], face_crop=True)
    assert "No face found in noise.png: translated the whole image." in answer.message
    assert Image.open(answer.outputs[0][0]).size == (48, 40)
    assert "no face found" in answer.inputs[0][1]


def test_full_model_runs_at_its_own_size(tmp_path, noise_image):

    full = tiny(False, discriminators=False).eval()
    web = WebTranslator(full, tmp_path / "app")
    # The page hides the size slider for a full model; whatever arrives is ignored.
    answer = web([noise_image(tmp_path / "photo.png", 50, 20)], size=64)
    assert "at 32x32 px" in answer.message and Image.open(answer.outputs[0][0]).size == (50, 20)
    assert "a full model (it runs at 32 px only)" in web.describe()
