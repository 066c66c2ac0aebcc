"""Face-centred crops: the detector on a real photo, the square's geometry, and `translate --face-crop`.

The photo is scikit-image's `astronaut` (Eileen Collins, NASA; public domain, "no known copyright
restrictions", as its docstring says), shipped inside the scikit-image wheel.
"""

from __future__ import annotations

import sys

import pytest
import torch
from PIL import Image

from ugatit.cli import main
from ugatit.config import Config, ModelConfig
from ugatit.nn.model import UGATIT
from ugatit.translate import faces
from ugatit.translate.faces import Box, crop_to_face, square_around
from ugatit.weights.export import export_generators

# The face in `astronaut`, marked by eye on the 512 x 512 photo: skin from cheek to cheek and from the
# hairline to the chin. A detector's box is judged against it with these tolerances: overlap (IoU) at
# least 0.6, and no side more than 15 px (about a sixth of the face's width) away.
ASTRONAUT_FACE = Box(180, 73, 272, 168)
MIN_IOU = 0.6
MAX_SIDE_ERROR = 15


def iou(a: Box, b: Box) -> float:
    width = max(0, min(a.right, b.right) - max(a.left, b.left))
    height = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = width * height
    return inter / (a.area + b.area - inter)


def contains(outer: Box, inner: Box) -> bool:
    return (
        outer.left <= inner.left
        and outer.top <= inner.top
        and outer.right >= inner.right
        and outer.bottom >= inner.bottom
    )


@pytest.fixture(scope="module")
def astronaut(need) -> Image.Image:
    need("cv2")
    return Image.fromarray(need("skimage.data").astronaut())


def test_finds_the_astronauts_face_and_crops_a_square_around_it(astronaut):
    found = crop_to_face(astronaut)
    assert found.found, "no face found in the astronaut photo"
    face = found.face
    assert iou(face, ASTRONAUT_FACE) >= MIN_IOU, (face, ASTRONAUT_FACE)
    for got, want in zip(face.as_tuple(), ASTRONAUT_FACE.as_tuple()):
        assert abs(got - want) <= MAX_SIDE_ERROR, (face, ASTRONAUT_FACE)
    crop = found.crop
    assert crop.width == crop.height == round(max(face.width, face.height) * faces.CROP_SCALE)
    assert contains(crop, ASTRONAUT_FACE) and contains(Box(0, 0, *astronaut.size), crop)
    assert found.image.size == (crop.width, crop.height)
    assert found.image.tobytes() == astronaut.crop(crop.as_tuple()).tobytes()
    # The boxes are drawn on a copy; the input is left alone.
    marked = found.marked()
    assert marked.getpixel((face.left, (face.top + face.bottom) // 2)) == faces.FACE_COLOUR
    assert marked.getpixel((crop.left, (crop.top + crop.bottom) // 2)) == faces.CROP_COLOUR
    assert astronaut.getpixel((face.left, (face.top + face.bottom) // 2)) != faces.FACE_COLOUR


def test_no_face_leaves_the_whole_image(need):
    need("cv2")
    # The sky and the wall of the photo: a real texture, no face.
    sky = Image.fromarray(need("skimage.data").astronaut()).crop((300, 0, 512, 60))
    found = crop_to_face(sky)
    assert not found.found and found.crop is None
    assert found.image is sky and "no face" in found.describe()
    assert found.marked().tobytes() == sky.tobytes()


@pytest.mark.parametrize(
    "face, size, expected",
    [
        (Box(40, 40, 60, 60), (100, 100), Box(30, 28, 70, 68)),  # room all round: centred, lifted by 2 px
        (Box(0, 0, 20, 20), (100, 80), Box(0, 0, 40, 40)),  # in a corner: moved inside, same side
        (Box(70, 50, 100, 80), (100, 80), Box(40, 20, 100, 80)),  # the other corner
        (Box(10, 10, 60, 60), (120, 70), Box(0, 0, 70, 70)),  # wider than the image is tall: shrunk to fit
    ],
)
def test_square_stays_inside_the_image(face, size, expected):
    assert square_around(face, size) == expected


def test_translate_face_crop_cli(astronaut, tmp_path, capsys):
    torch.manual_seed(0)
    model = UGATIT(ModelConfig(img_size=32, ch=4, n_res=1, light=True), discriminators=False).eval()
    checkpoint = export_generators(model, Config(model=model.config), tmp_path / "tiny.safetensors")
    photos = tmp_path / "photos"
    photos.mkdir()
    astronaut.save(photos / "astronaut.png")
    astronaut.crop((300, 0, 512, 60)).save(photos / "sky.png")
    out = tmp_path / "out"
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                str(checkpoint),
                "--input",
                str(photos),
                "--output",
                str(out),
                "--face-crop",
                "--attention",
                "--no-progress",
            ]
        )
        == 0
    )
    crop = crop_to_face(astronaut).crop
    assert Image.open(out / "astronaut.png").size == (crop.width, crop.height)
    assert Image.open(out / "astronaut_attention.png").size == (crop.width, crop.height)
    assert Image.open(out / "sky.png").size == (212, 60)
    assert f"no face found in {photos / 'sky.png'}: translated the whole image" in capsys.readouterr().err
    page = (out / "index.html").read_text()
    assert f"face {crop_to_face(astronaut).face}" in page and "no face found" in page
    # The index's input is the whole photo with the boxes on it, not the crop.
    assert Image.open(out / ".thumbnails/astronaut.jpg").size == (256, 256)


def test_face_crop_without_opencv_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    faces._cascade.cache_clear()
    try:
        # Any existing paths will do: the missing detector is found before the checkpoint is read.
        code = main(
            [
                "translate",
                "--checkpoint",
                str(tmp_path),
                "--input",
                str(tmp_path),
                "--output",
                str(tmp_path.parent / f"{tmp_path.name}-out"),
                "--face-crop",
            ]
        )
    finally:
        faces._cascade.cache_clear()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and 'pip install "ugatit[faces]"' in err
