"""Face-centred crops: the detector on a real photo, the square's geometry, and `translate --face-crop`.

The photo is scikit-image's `astronaut` (Eileen Collins, NASA; public domain, "no known copyright
restrictions", as its docstring says), shipped inside the scikit-image wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import tiny
from ugatit.cli import main
from ugatit.config import Config
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
    model = tiny(discriminators=False).eval()
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


# --- Paste-back ---------------------------------------------------------------------------------------


def test_paste_back_cli_gives_the_whole_photo_with_the_face_translated(astronaut, tmp_path):
    model = tiny(discriminators=False).eval()
    checkpoint = export_generators(model, Config(model=model.config), tmp_path / "tiny.safetensors")
    photo = tmp_path / "astronaut.png"
    astronaut.save(photo)

    def translate(out: Path, *flags: str) -> Path:
        done = subprocess.run(
            [sys.executable, "-m", "ugatit", "translate", "--checkpoint", str(checkpoint), "--input", str(photo)]
            + ["--output", str(out), "--no-progress", "--face-crop", *flags],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
        return out / "astronaut.png"

    pasted = np.asarray(Image.open(translate(tmp_path / "pasted", "--paste-back", "--attention")))
    crop_only = np.asarray(Image.open(translate(tmp_path / "crop")))
    source = np.asarray(astronaut)
    square = crop_to_face(astronaut).crop
    assert pasted.shape == source.shape  # the photo's size, not the crop's
    assert Image.open(tmp_path / "pasted" / "astronaut_attention.png").size == astronaut.size
    inside = np.zeros(source.shape[:2], bool)
    inside[square.top : square.bottom, square.left : square.right] = True
    assert np.array_equal(pasted[~inside], source[~inside])  # outside the square: the photo, bit for bit
    # Inside: the translation of the square (as --face-crop alone writes it), blended over the band.
    band = round(faces.FEATHER * square.width)
    core = (slice(square.top + band, square.bottom - band), slice(square.left + band, square.right - band))
    assert np.array_equal(pasted[core], crop_only[band:-band, band:-band])
    edge = (slice(square.top, square.bottom), square.left)  # the square's outermost column: still the photo
    assert np.array_equal(pasted[edge], source[edge])
    assert np.abs(pasted[core].astype(int) - source[core]).mean() > 20  # and the face really is translated


def test_feather_mask_stays_inside_the_square():
    square = Box(20, 30, 70, 80)
    mask = faces.feather_mask(square, (200, 200))
    band = round(faces.FEATHER * 50)
    assert mask.shape == (50, 50)
    assert (mask[0] == 0).all() and (mask[-1] == 0).all() and (mask[:, 0] == 0).all() and (mask[:, -1] == 0).all()
    assert (mask[band:-band, band:-band] == 1).all()
    row = mask[25, : band + 1]
    assert (np.diff(row) > 0).all()  # rising, without a step
    # A square against the photo's left and top borders: no blending on those sides.
    corner = faces.feather_mask(Box(0, 0, 50, 50), (200, 200))
    assert (corner[: 50 - band, 0] == 1).all() and (corner[0, : 50 - band] == 1).all()
    assert (corner[-1] == 0).all() and (corner[:, -1] == 0).all()


def test_paste_back_leaves_everything_outside_the_square_alone():
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8))
    square = Box(30, 10, 70, 50)
    translated = Image.new("RGB", (20, 20), (255, 0, 255))  # resized to the square
    out = np.asarray(faces.paste_back(photo, square, translated))
    src = np.asarray(photo)
    inside = np.zeros((60, 90), bool)
    inside[10:50, 30:70] = True
    assert np.array_equal(out[~inside], src[~inside])
    assert (out[30, 50] == (255, 0, 255)).all()


# --- Tracking -----------------------------------------------------------------------------------------


def jittered_path(frames: int, seed: int = 0) -> list[Box]:
    """A 40 px face moving right 2 px a frame, its detected box jittering by up to 3 px."""
    rng = np.random.default_rng(seed)
    boxes = []
    for i in range(frames):
        dx, dy, ds = rng.integers(-3, 4, 3)
        left, top = 50 + 2 * i + dx, 60 + dy
        boxes.append(Box(left, top, left + 40 + ds, top + 40 + ds))
    return boxes


def centre_steps(boxes) -> np.ndarray:
    return np.diff([(b.left + b.right) / 2 for b in boxes])


def test_smooth_track_steadies_the_box_and_bridges_short_misses():
    rate = 25.0
    path = jittered_path(50)
    detections = [[b] for b in path]
    detections[10] = detections[11] = []  # a miss of 2 frames (80 ms): bridged
    for i in range(30, 50):
        detections[i] = []  # gone for 0.8 s: not held past HOLD_SECONDS
    detections[20].append(Box(150, 10, 230, 90))  # a larger false face elsewhere: not followed
    track = faces.smooth_track(detections, rate)
    hold = round(faces.HOLD_SECONDS * rate)
    assert all(box is not None for box in track[:30])
    assert all(box is None for box in track[30:])  # a video's track does not outlast its last sighting
    assert hold < 20
    steady, raw = centre_steps(track[:30]), centre_steps(path[:30])
    assert np.abs(steady - 2).mean() < 0.35 * np.abs(raw - 2).mean(), (steady, raw)
    assert np.abs(steady).max() < 4


def test_smooth_track_starts_afresh_after_a_cut():
    before = [[Box(10, 10, 50, 50)]] * 10
    after = [[Box(200, 100, 240, 140)]] * 10
    track = faces.smooth_track(before + after, 25.0)
    assert track[9] == Box(10, 10, 50, 50) and track[10] == Box(200, 100, 240, 140)


def test_face_tracker_follows_a_live_face_and_lets_go():
    tracker = faces.FaceTracker()
    path = jittered_path(40, seed=1)
    dt = 1 / 15
    boxes = [tracker.update([box], i * dt) for i, box in enumerate(path)]
    steady, raw = centre_steps(boxes[10:]), centre_steps(path[10:])
    assert np.abs(steady - 2).mean() < 0.6 * np.abs(raw - 2).mean()
    # A short miss keeps the last box; a long one lets go.
    t = 40 * dt
    assert tracker.update([], t) == boxes[-1]
    assert tracker.update([], t + faces.HOLD_SECONDS + 0.1) is None
    # A face elsewhere after a cut is taken at once, not slid towards.
    far = Box(300, 300, 340, 340)
    assert tracker.update([far], t + 1.0) == far
