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

Paste-back (`paste_back`): the translated square goes back into the whole photo, blended into it over
a band of `FEATHER` of the square's side just inside the square's edge (a smoothstep ramp from the
photo at the edge to the translation), so there is no hard seam. The band lies inside the square:
every pixel outside it is the photo's own, bit for bit. Sides of the square that lie on the photo's
border are not feathered (there is nothing beyond them to blend with).

Tracking (`smooth_track` for a video file, `FaceTracker` for a live camera): a detector's box jitters
by a few pixels from frame to frame and sometimes misses a frame, which would make a crop shake and
blink. A track follows the face that overlaps the previous one most (so it does not jump to another
face in the picture), bridges misses of up to `HOLD_SECONDS`, starts afresh after a jump of more than
a face's size (a scene cut), and averages the box's centre and size over `SMOOTH_SECONDS`: centred on
each frame for a file, whose later frames are known, exponentially over the past for a camera.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
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
FEATHER = 0.08  # the paste-back's blending band, as a share of the square's side
SMOOTH_SECONDS = 0.4  # a track's averaging window (a file), or the time constant of its average (a camera)
HOLD_SECONDS = 0.5  # a track bridges detector misses up to this long; longer, the face is gone
MATCH_IOU = 0.2  # a detection continues a track when it overlaps the track's face at least this much
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


# --- Paste-back ----------------------------------------------------------------------------------------


def feather_mask(crop: Box, image_size: tuple[int, int], feather: float = FEATHER) -> np.ndarray:
    """The weight of the translation in the paste-back, (side, side) float32 in [0, 1]: 0 on the square's
    outermost pixels, rising (smoothstep) to 1 over `feather` of its side, on each side of the square
    that faces the photo; 1 up to a side that lies on the photo's border (see the module docstring)."""
    width, height = image_size
    band = max(1, round(feather * min(crop.width, crop.height)))

    def ramp(length: int, open_start: bool, open_end: bool) -> np.ndarray:
        # Distance in pixels from each end, 0 on the outermost pixel; an end on the photo's border has
        # no ramp.
        index = np.arange(length, dtype=np.float32)
        distance = np.full(length, np.inf, dtype=np.float32)
        if open_start:
            distance = np.minimum(distance, index)
        if open_end:
            distance = np.minimum(distance, length - 1 - index)
        t = np.clip(distance / band, 0.0, 1.0)
        return t * t * (3.0 - 2.0 * t)

    across = ramp(crop.width, crop.left > 0, crop.right < width)
    down = ramp(crop.height, crop.top > 0, crop.bottom < height)
    return np.minimum(down[:, None], across[None, :])


def paste_back(photo: Image.Image, crop: Box, translated: Image.Image, feather: float = FEATHER) -> Image.Image:
    """`photo` (RGB) with `translated` (the translation of its square `crop`, resized to it when needed)
    blended into the square (see `feather_mask`); outside the square the result is `photo` exactly."""
    photo = photo.convert("RGB")
    if translated.size != (crop.width, crop.height):
        translated = translated.resize((crop.width, crop.height), Image.Resampling.BICUBIC)
    out = np.array(photo)
    region = out[crop.top : crop.bottom, crop.left : crop.right].astype(np.float32)
    weight = feather_mask(crop, photo.size, feather)[..., None]
    blended = region + weight * (np.asarray(translated.convert("RGB"), dtype=np.float32) - region)
    out[crop.top : crop.bottom, crop.left : crop.right] = np.rint(blended).astype(np.uint8)
    return Image.fromarray(out)


# --- Tracking ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Face:
    """A face box as its centre and side, in float pixels, so that averages do not round."""

    x: float
    y: float
    side: float

    @classmethod
    def of(cls, box: Box) -> _Face:
        return cls((box.left + box.right) / 2, (box.top + box.bottom) / 2, float(max(box.width, box.height)))

    def box(self) -> Box:
        half = self.side / 2
        return Box(round(self.x - half), round(self.y - half), round(self.x + half), round(self.y + half))

    def jumped(self, other: _Face) -> bool:
        """Whether `other` is too far from this face to be the same one a frame later (a scene cut)."""
        return math.hypot(other.x - self.x, other.y - self.y) > self.side or not (0.5 < other.side / self.side < 2.0)


def pick_face(detections: Sequence[Box], previous: Box | None) -> Box | None:
    """The detection that continues a track at `previous` (the one overlapping it most, at least
    `MATCH_IOU`), else the largest; None when there is none."""
    if not detections:
        return None
    if previous is not None:
        best = max(detections, key=lambda box: _iou(box, previous))
        if _iou(best, previous) >= MATCH_IOU:
            return best
    return max(detections, key=lambda box: box.area)


def smooth_track(
    detections: Sequence[Sequence[Box]],
    rate: float,
    smooth_seconds: float = SMOOTH_SECONDS,
    hold_seconds: float = HOLD_SECONDS,
) -> list[Box | None]:
    """One face box per frame for a video file at `rate` frames/s, from each frame's detections (any
    order): see the module docstring. None where no face is tracked."""
    picked: list[Box | None] = []
    for found in detections:
        previous = next((box for box in reversed(picked) if box is not None), None)
        picked.append(pick_face(found, previous))
    faces = [_Face.of(box) if box is not None else None for box in picked]
    hold = max(0, round(hold_seconds * rate))
    # Segments: stretches of frames with a face, cut where a face jumps; short misses inside a segment
    # are bridged by interpolation.
    segments: list[list[int]] = []
    last: int | None = None
    for i, face in enumerate(faces):
        if face is None:
            continue
        if last is not None and i - last - 1 <= hold and not faces[last].jumped(face):
            for gap in range(last + 1, i):
                t = (gap - last) / (i - last)
                a, b = faces[last], face
                faces[gap] = _Face(a.x + t * (b.x - a.x), a.y + t * (b.y - a.y), a.side + t * (b.side - a.side))
            segments[-1].extend(range(last + 1, i + 1))
        else:
            segments.append([i])
        last = i
    radius = max(0, round(smooth_seconds * rate / 2))
    track: list[Box | None] = [None] * len(faces)
    for segment in segments:
        x, y, side = (
            _local_linear(np.array([getattr(faces[i], name) for i in segment]), radius) for name in ("x", "y", "side")
        )
        for k, i in enumerate(segment):
            track[i] = _Face(float(x[k]), float(y[k]), float(side[k])).box()
    return track


def _local_linear(values: np.ndarray, radius: int) -> np.ndarray:
    """Each value replaced by a straight line fitted (least squares) to the values within `radius`
    frames of it, read at its frame: in the middle of a segment the plain mean of a centred window;
    at the ends, where the window is cut, it follows a steady motion instead of lagging behind it."""
    out = np.empty(len(values))
    for k in range(len(values)):
        lo, hi = max(0, k - radius), min(len(values), k + radius + 1)
        t = np.arange(lo, hi) - k
        v = values[lo:hi]
        if len(v) < 3:  # a line through two points or fewer smooths nothing
            out[k] = values[k]
            continue
        slope = ((t - t.mean()) * (v - v.mean())).sum() / ((t - t.mean()) ** 2).sum()
        out[k] = v.mean() - slope * t.mean()
    return out


class FaceTracker:
    """The online counterpart of `smooth_track`, for a live camera: `update(detections)` once per frame
    returns the smoothed face box, or None once no face has been seen for `hold_seconds`. The average
    is exponential with time constant `smooth_seconds`, in real time, whatever the frame rate."""

    def __init__(self, smooth_seconds: float = SMOOTH_SECONDS, hold_seconds: float = HOLD_SECONDS):
        self.smooth_seconds, self.hold_seconds = smooth_seconds, hold_seconds
        self.face: _Face | None = None
        self.seen: float | None = None  # when a face was last detected
        self.updated: float | None = None

    def update(self, detections: Sequence[Box], now: float) -> Box | None:
        """The face box for a frame taken at `now` (seconds, any clock) with these detections."""
        found = pick_face(detections, self.face.box() if self.face is not None else None)
        if found is None:
            if self.seen is None or now - self.seen > self.hold_seconds:
                self.face = None
            return self.face.box() if self.face is not None else None
        face = _Face.of(found)
        if self.face is None or self.face.jumped(face) or self.updated is None:
            self.face = face
        else:
            keep = math.exp(-max(0.0, now - self.updated) / self.smooth_seconds)
            old = self.face
            self.face = _Face(
                face.x + keep * (old.x - face.x),
                face.y + keep * (old.y - face.y),
                face.side + keep * (old.side - face.side),
            )
        self.seen = self.updated = now
        return self.face.box()


def _iou(a: Box, b: Box) -> float:
    width = max(0, min(a.right, b.right) - max(a.left, b.left))
    height = max(0, min(a.bottom, b.bottom) - max(a.top, b.top))
    inter = width * height
    union = a.area + b.area - inter
    return inter / union if union else 0.0
