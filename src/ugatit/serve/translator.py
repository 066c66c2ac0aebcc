"""What one press of the web app's button does, without the web framework: check the uploads against
the limits, translate them with the same code as `ugatit translate`, and say what happened in words.

Every file goes into the app's temporary folder: uploads are there already (the web framework's cache
is pointed at it), and each request writes its outputs into a fresh sub-folder. Folders of requests
older than `KEEP_SECONDS` are removed as new requests arrive.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..config import ablation_name
from ..domains import DIRECTIONS, GENERATOR_OF, Direction, source_and_target
from ..errors import UserError, reword
from ..nn.model import UGATIT
from ..translate import TranslateOptions, resolve_size, translate_paths
from ..translate.images import judges_attention

MAX_IMAGES = 8  # per request: each is a forward pass, and requests queue one at a time
MAX_FILE_MB = 25  # per file; also given to the web framework, which stops larger uploads first
MAX_PIXELS = 50_000_000  # a 50-megapixel phone photo decodes to 150 MB; larger ones are refused
MAX_LIGHT_SIZE = 1024  # the largest size a light model may be asked to run at here
KEEP_SECONDS = 3600

#: How library messages' terms read in the page (see `ugatit.errors.reword`).
TERMS = {"size": "the model size", "direction": "the direction"}

Gallery = list[tuple[str, str]]  # (image path, caption)


@dataclass
class Answer:
    """What the page shows after one request; `message` is always set, the rest only when something
    was translated."""

    message: str
    inputs: Gallery = field(default_factory=list)
    outputs: Gallery = field(default_factory=list)
    attention: Gallery = field(default_factory=list)
    verdicts: str = ""
    downloads: list[str] = field(default_factory=list)


def source_probability(cam_logit: Sequence[float]) -> float:
    """How sure the generator's auxiliary classifier is that its input is from the generator's source
    domain: it was trained (the CAM loss) to say 1 there and 0 on images already in the target domain.
    Its two heads, on average- and max-pooled features, are averaged."""
    return sum(1.0 / (1.0 + math.exp(-float(x))) for x in cam_logit) / len(cam_logit)


class WebTranslator:
    """A loaded model and the app's temporary folder; `__call__` answers one request."""

    def __init__(self, model: UGATIT, temp_dir: str | os.PathLike[str], checkpoint_name: str = "checkpoint"):
        self.model = model
        self.temp_dir = Path(temp_dir)
        self.checkpoint_name = checkpoint_name

    @property
    def directions(self) -> tuple[Direction, ...]:
        return tuple(d for d in DIRECTIONS if getattr(self.model, GENERATOR_OF[d], None) is not None)

    @property
    def light(self) -> bool:
        return bool(self.model.config.light)

    @property
    def trained_size(self) -> int:
        return int(self.model.config.img_size)

    @property
    def max_size(self) -> int:
        """The largest square a light model may be asked for here (never below its trained size)."""
        return max(MAX_LIGHT_SIZE, self.trained_size)

    def describe(self) -> str:
        cfg = self.model.config
        kind = (
            "a light model (it runs at any size)" if cfg.light else f"a full model (it runs at {cfg.img_size} px only)"
        )
        device = next(self.model.parameters()).device
        blocks = f"{cfg.n_res} residual block{'s' if cfg.n_res != 1 else ''}"
        variant = ablation_name(cfg)
        variant = "" if variant == "full" else f", the paper's ablation `{variant}`"
        return (
            f"Checkpoint `{self.checkpoint_name}`: {kind}, trained at {cfg.img_size} px, {cfg.ch} base "
            f"channels, {blocks}{variant}; running on {device}."
        )

    def describe_attention(self) -> str:
        """What the attention gallery shows for this model."""
        if not self.model.config.g_cam:
            text = "This model's generators have no CAM attention (an ablation)."
        else:
            text = (
                "The attention map is where the generator looked: its auxiliary classifier's weights on the "
                "feature maps (the CAM)."
            )
        if judges_attention(self.model):
            text += (
                " After it come where the target domain's global and local discriminators looked on the "
                "translation (their CAM; the paper's Figure 2 (c)-(d))."
            )
        return text

    def __call__(
        self,
        files: Sequence[str | os.PathLike[str]] | None,
        direction: str = "a2b",
        face_crop: bool = False,
        size: int | float | None = None,
    ) -> Answer:
        """Translate uploaded image files. Never raises for anything a visitor can do: every problem
        comes back as the answer's message."""
        try:
            return self._translate([Path(f) for f in files or []], direction, bool(face_crop), size)
        except UserError as exc:
            return Answer(f"**Not translated:** {reword(str(exc), TERMS)}")
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return Answer("**Something went wrong on the server** (a bug; the server's log has the details).")

    def _translate(self, files: list[Path], direction: str, face_crop: bool, size: int | float | None) -> Answer:
        if not files:
            return Answer("Upload an image (or take a webcam shot) first.")
        if len(files) > MAX_IMAGES:
            return Answer(f"**Not translated:** {len(files)} images in one request; at most {MAX_IMAGES}.")
        if direction not in self.directions:
            raise UserError(f"`direction` must be one of {', '.join(self.directions)}, got {direction!r}")
        side = resolve_size(self.model, _whole(size) if self.light else None)
        if side > self.max_size:
            raise UserError(f"`size` {side} is above this app's limit of {self.max_size} px")
        problems, accepted = [], []
        for path in files:
            reason = _refusal(path)
            if reason:
                problems.append(f"{path.name}: {reason}")
            else:
                accepted.append(path)
        request_dir = self._new_request_dir()
        started = time.perf_counter()
        results = (
            translate_paths(
                self.model,
                accepted,
                request_dir,
                direction,
                TranslateOptions(attention=True, batch_size=MAX_IMAGES, size=side, face_crop=face_crop),
                thumbnails=True,
            )
            if accepted
            else []
        )
        seconds = time.perf_counter() - started
        problems += [f"{r.source.name}: {r.error}" for r in results if not r.ok]
        done = [r for r in results if r.ok]
        source, target = source_and_target(direction)
        answer = Answer(_summary(done, problems, source, target, side, seconds))
        for r in done:
            answer.inputs.append((str(r.thumbnail), r.name if r.face_note is None else f"{r.name}: {r.face_note}"))
            answer.outputs.append((str(r.output), f"{r.name}: {source} to {target}"))
            answer.downloads.append(str(r.output))
            if r.attention is not None:  # none from a generator without CAM
                answer.attention.append((str(r.attention), f"{r.name}: where {GENERATOR_OF[direction]} looked"))
                answer.downloads.append(str(r.attention))
            for scale, path in r.judged.items():
                network = f"dis{'G' if scale == 'global' else 'L'}{target}"
                caption = f"{r.name}: where the {scale} discriminator {network} looked, on the translation"
                answer.attention.append((str(path), caption))
                answer.downloads.append(str(path))
        answer.verdicts = _verdict_table(done, source, target)
        return answer

    def _new_request_dir(self) -> Path:
        requests = self.temp_dir / "requests"
        requests.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - KEEP_SECONDS
        for old in requests.iterdir():
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        return requests / uuid.uuid4().hex[:12]


def _whole(size: int | float | None) -> int | None:
    if size is None:
        return None
    if isinstance(size, float) and not size.is_integer():
        raise UserError(f"`size` must be a whole number of pixels, got {size}")
    return int(size)


def _refusal(path: Path) -> str | None:
    """Why an upload is refused before decoding (too large), or None. Undecodable files are left to
    the translation, which names their problem."""
    try:
        megabytes = path.stat().st_size / 2**20
    except OSError:
        return "the upload is missing on the server (try again)"
    if megabytes > MAX_FILE_MB:
        return f"{megabytes:.1f} MB, over the {MAX_FILE_MB} MB limit"
    try:
        with Image.open(path) as img:  # reads the header only
            width, height = img.size
    except Exception:
        return None
    if width * height > MAX_PIXELS:
        return f"{width}x{height} px, over the {MAX_PIXELS // 1_000_000}-megapixel limit"
    return None


def _summary(done: list, problems: list[str], source: str, target: str, side: int, seconds: float) -> str:
    lines = []
    if done:
        lines.append(
            f"Translated {len(done)} image{'s' if len(done) != 1 else ''} from domain {source} to "
            f"domain {target} at {side}x{side} px in {seconds:.1f} s."
        )
        no_face = [r.name for r in done if r.face_note is not None and r.face is None]
        if no_face:
            lines.append(f"No face found in {', '.join(no_face)}: translated the whole image.")
    if problems:
        lines.append("**Not translated:** " + "; ".join(problems) + ".")
    return "\n\n".join(lines)


def _verdict_table(done: list, source: str, target: str) -> str:
    done = [r for r in done if r.cam_logit is not None]  # a generator without CAM has no classifier
    if not done:
        return ""
    rows = [
        "The generator's auxiliary classifier (the CAM of U-GAT-IT) judges each input: it was trained to "
        f"tell domain {source}, which it must translate, from domain {target}, which it must leave alone.",
        "",
        f"| image | classifier says | P(domain {source}) |",
        "|---|---|---|",
    ]
    for r in done:
        p = source_probability(r.cam_logit)
        verdict = f"domain {source}: translate it" if p >= 0.5 else f"already domain {target}"
        rows.append(f"| {r.name.replace('|', '/')} | {verdict} | {p:.3f} |")
    return "\n".join(rows)
