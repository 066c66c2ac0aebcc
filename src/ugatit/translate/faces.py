"""Face-centred square crops, so that a photo is translated the way selfie2anime-style models saw faces.

Detector: OpenCV's frontal-face Haar cascade (``haarcascade_frontalface_default.xml``), which the
``opencv-python-headless`` wheel ships inside the package (``cv2.data.haarcascades``): nothing is
downloaded at run time, it runs in tens of milliseconds on a CPU, and it is the detector behind years of
face-cropping scripts. OpenCV's better DNN detector (YuNet) needs a model file that the wheel does not
ship, and OpenCV 5 dropped the cascades from the main package, hence the ``<5`` pin in the extras.

Crop: a square whose side is `CROP_SCALE` times the detected box's side, centred on the box and lifted
by `CROP_LIFT` of its side, so that the hair and chin are in and the face fills about half the width,
as in head-and-shoulders selfies. The Haar box spans roughly the eyebrows to the mouth, so a tighter
crop would cut the head. The square is moved, not cut, to stay inside the image, and shrunk only when
the image is narrower than it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..data.sources import Source
from ..errors import UserError

CROP_SCALE = 2.0
CROP_LIFT = 0.1
CASCADE = "haarcascade_frontalface_default.xml"
DETECT_SIDE = 800  # longest side the detector sees: finds faces down to ~3% of it, in ~0.1 s
FACE_COLOUR = (0, 230, 0)
CROP_COLOUR = (255, 200, 0)
INSTALL_HINT = 'face crops need OpenCV: pip install "ugatit[faces]" (or "ugatit[serve]")'


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels: left and top inclusive, right and bottom exclusive."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return self.width * self.height

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.right, self.bottom)

    def __str__(self) -> str:
        return f"{self.width}x{self.height} at ({self.left}, {self.top})"


@dataclass
class FaceCrop:
    """What to translate for one input: the square around its largest face, or the whole image."""

    image: Image.Image  # the crop, or the input itself when no face was found
    source: Image.Image  # the whole input
    face: Box | None  # the largest face, in the input's pixels
    crop: Box | None  # the square that was cut out

    @property
    def found(self) -> bool:
        return self.face is not None

    def describe(self) -> str:
        if self.face is None:
            return "no face found: translated the whole image"
        return f"face {self.face}; translated the square {self.crop}"

    def marked(self) -> Image.Image:
        """The whole input with the face box (green) and the cropped square (amber) drawn on it."""
        out = self.source.copy()
        if self.face is None or self.crop is None:
            return out
        draw = ImageDraw.Draw(out)
        width = max(2, round(max(out.size) / 200))
        for box, colour in ((self.crop, CROP_COLOUR), (self.face, FACE_COLOUR)):
            draw.rectangle((box.left, box.top, box.right - 1, box.bottom - 1), outline=colour, width=width)
        return out


@lru_cache(maxsize=1)
def _cascade() -> tuple[Any, threading.Lock]:
    try:
        import cv2
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    data = getattr(cv2, "data", None)
    if data is None or not hasattr(cv2, "CascadeClassifier"):
        raise UserError(f"this OpenCV ({cv2.__version__}) has no Haar cascades (OpenCV 5 dropped them): {INSTALL_HINT}")
    classifier = cv2.CascadeClassifier(data.haarcascades + CASCADE)
    if classifier.empty():
        raise UserError(f"OpenCV could not load its bundled {CASCADE}: reinstall opencv-python-headless")
    # One classifier serves every thread of a web app; OpenCV does not promise it is thread-safe.
    return classifier, threading.Lock()


def detect_faces(image: Image.Image) -> list[Box]:
    """Frontal faces in an RGB image, largest first, in the image's pixels."""
    import cv2

    classifier, lock = _cascade()
    scale = min(1.0, DETECT_SIDE / max(image.size))
    small = (
        image
        if scale == 1.0
        else image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.BILINEAR
        )
    )
    gray = cv2.equalizeHist(cv2.cvtColor(np.asarray(small.convert("RGB")), cv2.COLOR_RGB2GRAY))
    smallest = max(20, round(min(gray.shape) / 12))
    with lock:
        found = classifier.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest))
    boxes = [
        Box(round(x / scale), round(y / scale), round((x + w) / scale), round((y + h) / scale))
        for x, y, w, h in (found if len(found) else [])
    ]
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def square_around(face: Box, image_size: tuple[int, int], scale: float = CROP_SCALE, lift: float = CROP_LIFT) -> Box:
    """The square crop for a face box inside an image of `image_size` = (width, height): see the module
    docstring."""
    width, height = image_size
    side = min(round(max(face.width, face.height) * scale), width, height)
    centre_x = (face.left + face.right) / 2
    centre_y = (face.top + face.bottom) / 2 - lift * face.height
    left = min(max(0, round(centre_x - side / 2)), width - side)
    top = min(max(0, round(centre_y - side / 2)), height - side)
    return Box(left, top, left + side, top + side)


def crop_to_face(image: Image.Image) -> FaceCrop:
    """The square around the largest face in `image`, or the whole image when none is found."""
    faces = detect_faces(image)
    if not faces:
        return FaceCrop(image, image, None, None)
    crop = square_around(faces[0], image.size)
    return FaceCrop(image.crop(crop.as_tuple()), image, faces[0], crop)


def check_face_detector() -> None:
    """Raise `UserError` now, before a model is loaded, when face crops cannot work here."""
    _cascade()


class FaceCropSource(Source):
    """Another source's images, each cut to its face (see `crop_to_face`). What was found for position i
    waits in `take(i)` for the caller that translates it; the inference loader must run in this process
    (no worker processes) for that."""

    def __init__(self, inner: Source):
        self.inner, self.label = inner, inner.label
        self._crops: dict[int, FaceCrop] = {}

    def __len__(self) -> int:
        return len(self.inner)

    def name(self, index: int) -> str:
        return self.inner.name(index)

    def load(self, index: int) -> Image.Image:
        crop = crop_to_face(self.inner.load(index))
        self._crops[index] = crop
        return crop.image

    def take(self, index: int) -> FaceCrop:
        return self._crops.pop(index)
