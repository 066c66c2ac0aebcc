"""The live tab's work, without the web framework: one camera frame in, its translation out.

Each browser tab that streams its camera has a `LiveSession`: the face track (`faces.FaceTracker`, so
the square neither shakes with the detector's jitter nor blinks out on a missed frame) and the measured
rate. A frame goes through the same code as a photo: the square around the tracked face is cut out,
translated (`translate_images`), and pasted back into the frame (`faces.paste_back`, feathered inside
the square), or shown alone; a frame without a face comes back as it is. Without the face crop the
whole frame is translated.

The rate: frames come back as fast as this machine translates them (the page sends the next frame
when the last one is answered), and the page shows frames/s measured here, between answered frames,
averaged over about a second, with the time one translation takes.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..domains import DIRECTIONS, GENERATOR_OF
from ..errors import UserError
from ..nn.model import UGATIT
from ..translate import translate_images
from ..translate.faces import FaceTracker, detect_faces, paste_back, square_around

RATE_SECONDS = 1.0  # time constant of the frames/s average
MAX_SIDE = 1280  # larger camera frames are scaled down first: a face needs no more, and it keeps the rate up


@dataclass
class LiveSession:
    """One camera stream's state: its face track and its measured rate."""

    tracker: FaceTracker = field(default_factory=FaceTracker)
    answered: float | None = None  # when the last frame was answered
    rate: float | None = None  # frames/s, averaged
    seconds: float | None = None  # one translation, averaged
    frames: int = 0


class LiveTranslator:
    """A loaded model; `__call__` answers one frame of one session."""

    def __init__(self, model: UGATIT):
        self.model = model
        self.device = next(model.parameters()).device

    def __call__(
        self,
        frame: np.ndarray | None,
        direction: str = "a2b",
        face_crop: bool = True,
        paste: bool = True,
        session: LiveSession | None = None,
        now: float | None = None,
    ) -> tuple[np.ndarray | None, str, LiveSession]:
        """The translated frame (RGB uint8), the words for the page, and the session to keep. Never
        raises for what a visitor can do: a problem comes back as the words."""
        session = session if isinstance(session, LiveSession) else LiveSession()
        if frame is None:
            return None, "Start the camera to see it translated.", session
        started = time.perf_counter()
        try:
            image, note = self._translate(frame, direction, bool(face_crop), bool(paste), session, now)
        except UserError as exc:
            return None, f"**Not translated:** {exc}", session
        except Exception as exc:  # a bug: one line in the server's log, a sentence in the page
            print(f"ugatit serve: live frame failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return None, "**Something went wrong on the server** (a bug; the server's log has the details).", session
        done = time.perf_counter()
        spent = done - started
        session.seconds = spent if session.seconds is None else 0.8 * session.seconds + 0.2 * spent
        if session.answered is not None:
            interval = max(done - session.answered, 1e-6)
            keep = math.exp(-interval / RATE_SECONDS)
            session.rate = 1 / interval if session.rate is None else keep * session.rate + (1 - keep) / interval
        session.answered = done
        session.frames += 1
        rate = f"**{session.rate:.1f} frames/s**" if session.rate is not None else "**measuring frames/s**"
        words = (
            f"{rate} on {self.device.type}: {1000 * session.seconds:.0f} ms to translate a frame; {note} "
            f"({session.frames} frames so far)"
        )
        return np.asarray(image), words, session

    def _translate(
        self, frame: np.ndarray, direction: str, face_crop: bool, paste: bool, session: LiveSession, now: float | None
    ) -> tuple[Image.Image, str]:
        if direction not in DIRECTIONS or getattr(self.model, GENERATOR_OF[direction], None) is None:
            raise UserError(f"this model cannot translate {direction!r}")
        image = Image.fromarray(np.ascontiguousarray(frame[..., :3]).astype(np.uint8)).convert("RGB")
        if max(image.size) > MAX_SIDE:
            scale = MAX_SIDE / max(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
        if not face_crop:
            return translate_images(self.model, [image], direction)[0].image, "the whole frame translated"
        face = session.tracker.update(detect_faces(image), time.monotonic() if now is None else now)
        if face is None:
            return image, "no face found: the frame as it is"
        square = square_around(face, image.size)
        translated = translate_images(self.model, [image.crop(square.as_tuple())], direction)[0].image
        if not paste:
            return translated, f"the face square ({square.width} px) translated"
        return paste_back(image, square, translated), f"the face square ({square.width} px) translated and pasted back"
