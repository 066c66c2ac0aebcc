"""Translating a video file into a video file, with PyAV (FFmpeg inside its wheel; the `video` extra).

`translate_video(model, "clip.mp4", "out/")` writes ``out/clip.mp4``: the same container (by the
extension), every frame translated in order with its own timestamp (so the frame count, frame rate and
duration are the input's, variable frame rates included), and every audio stream copied packet for
packet, not re-encoded. Frames are decoded upright (a phone video's rotation flag is applied to the
pixels, and the output carries no rotation), translated in batches on the model's device with the same
code as images (`translate_images`: resized to the model's square size and back), and encoded with
H.264 (`libx264`, CRF `CRF`: visually lossless) where the container takes it, VP9 in WebM, else the
container's own default codec.

Face crops (`face_crop=True`): a first pass decodes the video to find the faces in every frame, and
`faces.smooth_track` turns the detections into one steady box per frame; the second pass translates
each frame's square around its tracked face and pastes it back into the frame (`faces.paste_back`).
Frames where no face is tracked pass through untranslated.

A file that cannot be decoded to its end (cut short, damaged) is translated as far as it can be read:
the output keeps those frames and is a complete, playable file, and `VideoResult.stopped` says where
and why decoding stopped. The output is written under a temporary name and renamed when it is
complete, so an output name never holds a half-written file.

Flicker: `VideoResult.flicker` is the mean absolute change between consecutive frames (0-255 per
channel, averaged over pixels and frame pairs), of the output and of the input. A translation that
is stable in time changes about as much as its input; a much larger figure is flicker.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..domains import Direction
from ..errors import UserError
from ..nn.model import UGATIT
from ..utils.console import progress_bar
from .faces import Box, check_face_detector, detect_faces, paste_back, smooth_track, square_around
from .images import _check_batch_size, resolve_size, translate_images

#: Extensions read as videos. GIFs stay images (Pillow reads their first frame, as before).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".wmv"}
    | {".3gp", ".ogv"}
)
INSTALL_HINT = 'video needs PyAV: pip install "ugatit[video]"'
CRF = 18  # x264's constant rate factor: 18 is commonly called visually lossless; lower is larger and closer
VP9_CRF = 24  # libvpx-vp9's scale differs; 24 is about as close
#: How far (in frame durations) the last decoded frame may end before the announced end of the video.
END_SLACK_FRAMES = 1.5


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether `path` names a video file (by its extension; see `VIDEO_SUFFIXES`)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def check_video_support() -> None:
    """Raise `UserError` now, before a model is loaded, when PyAV is missing."""
    _av()


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return av


@dataclass
class VideoResult:
    """What became of one video."""

    source: Path
    output: Path
    frames: int  # frames written
    announced: int | None  # frames the input's header announces (None when it does not say)
    rate: Fraction  # average frame rate
    size: tuple[int, int]  # (width, height), upright
    audio: list[str]  # codecs of the audio streams copied
    seconds: float  # wall time, from the first decoded frame of the first pass to the closed output
    flicker: tuple[float, float] = (0.0, 0.0)  # (output, input): see the module docstring
    faces: int | None = None  # with face crops: frames translated around a tracked face
    stopped: str | None = None  # where and why decoding stopped before the end, or None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("inf")

    def flicker_line(self) -> str:
        out, inp = self.flicker
        ratio = f" (x{out / inp:.2f})" if inp > 0 else ""
        return (
            f"flicker: consecutive output frames differ by {out:.2f} grey levels on average, the input's by "
            f"{inp:.2f}{ratio}"
        )


@dataclass
class _Frame:
    index: int
    pts: int | None
    time: float | None
    image: Image.Image  # RGB, upright


@dataclass
class _Reader:
    """An open input video: its video stream, its audio streams, and how far decoding got."""

    path: Path
    container: Any
    video: Any
    audio: list[Any]
    announced: int | None
    end_time: float | None  # seconds, where the header says the video stream ends
    rate: Fraction
    stopped: str | None = None
    decoded: int = 0
    last_time: float | None = None
    size: tuple[int, int] | None = None
    _av: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, path: Path) -> _Reader:
        av = _av()
        try:
            container = av.open(str(path), metadata_errors="ignore")
        except (av.FFmpegError, OSError) as exc:
            raise UserError(f"cannot read video {path}: {_reason(exc)} (a damaged or cut-short file?)") from None
        if not container.streams.video:
            container.close()
            raise UserError(f"{path} has no video stream")
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        rate = video.average_rate or video.guessed_rate or Fraction(25)
        end_time = None
        if video.duration is not None and video.time_base is not None:
            end_time = float((video.duration + (video.start_time or 0)) * video.time_base)
        elif container.duration is not None:
            end_time = container.duration / 1_000_000
        return cls(
            path,
            container,
            video,
            list(container.streams.audio),
            video.frames or None,
            end_time,
            Fraction(rate),
            _av=av,
        )

    def close(self) -> None:
        self.container.close()

    def frames(self, on_audio: Callable[[Any], None] | None = None) -> Iterator[_Frame]:
        """The video's frames in order, upright; audio packets go to `on_audio` as they are met. Stops
        at the end, or where decoding fails (then `stopped` says where and why)."""
        av = self._av
        streams = [self.video, *(self.audio if on_audio is not None else [])]
        try:
            for packet in self.container.demux(*streams):
                if packet.stream.type == "video":
                    for frame in packet.decode():
                        yield self._frame(frame)
                elif packet.dts is not None and on_audio is not None:
                    on_audio(packet)
            # demux ends each stream with an empty packet, whose decode() flushes the decoder's last frames
        except (av.FFmpegError, OSError, ValueError) as exc:
            self.stopped = f"decoding failed after {self.decoded} frames{self._at()}: {_reason(exc)}"
            return
        self._check_end()

    def _frame(self, frame: Any) -> _Frame:
        image = frame.to_image()  # RGB24
        rotation = round((frame.rotation or 0) / 90) % 4  # counter-clockwise quarter turns to show it upright
        if rotation:
            image = image.transpose(
                (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)[rotation - 1]
            )
        seconds = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
        self.size = self.size or image.size
        if image.size != self.size:  # a stream whose frame size changes midway: keep the first size
            image = image.resize(self.size, Image.Resampling.BICUBIC)
        out = _Frame(self.decoded, frame.pts, seconds, image)
        self.decoded += 1
        self.last_time = seconds
        return out

    def _at(self) -> str:
        return f" (at {self.last_time:.2f} s)" if self.last_time is not None else ""

    def _check_end(self) -> None:
        """A file cut short often just ends, without a decoding error: compare with what the header says."""
        short_count = self.announced is not None and self.decoded < self.announced
        short_time = (
            self.end_time is not None
            and self.last_time is not None
            and self.last_time + float(END_SLACK_FRAMES / self.rate) < self.end_time
        )
        if short_count or (self.announced is None and short_time):
            frames = (
                f"{self.decoded} of the {self.announced} frames its header announces"
                if short_count
                else f"{self.decoded} frames"
            )
            at = (
                f" (at {self.last_time:.2f} s of {self.end_time:.2f} s)"
                if self.last_time is not None and self.end_time
                else ""
            )
            self.stopped = f"it ends after {frames}{at}: cut short?"


class _Writer:
    """The output video: one video stream (encoded here) and the input's audio streams (copied)."""

    def __init__(self, path: Path, reader: _Reader, size: tuple[int, int]):
        av = reader._av
        self.path, self.av = path, av
        # The temporary file keeps the extension, by which FFmpeg chooses the container.
        self.partial = path.with_name(f".{path.stem}.partial{path.suffix}")
        try:
            self.container = av.open(str(self.partial), mode="w")
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise UserError(f"cannot write video {path}: {_reason(exc)}") from None
        codec, options = _encoder(self.container, path)
        width, height = size
        try:
            self.video = self.container.add_stream(codec, rate=reader.rate, options=options)
        except (av.FFmpegError, ValueError) as exc:
            self._discard()
            raise UserError(f"cannot write {path.suffix} video with {codec}: {_reason(exc)}") from None
        self.video.width, self.video.height = width, height
        # 4:2:0 chroma needs even sides; the rare odd-sized video gets full chroma instead.
        supported = {f.name for f in (self.video.codec_context.codec.video_formats or [])}
        wanted = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        self.video.pix_fmt = wanted if not supported or wanted in supported else sorted(supported)[0]
        self.video.time_base = reader.video.time_base  # the input's timestamps, unchanged
        self.audio = {}
        for stream in reader.audio:
            try:
                self.audio[stream.index] = self.container.add_stream_from_template(stream)
            except (av.FFmpegError, ValueError) as exc:
                self._discard()
                raise UserError(
                    f"cannot copy the audio ({stream.codec_context.name}) of {reader.path} into a {path.suffix} "
                    f"file: {_reason(exc)}"
                ) from None
        self.frames = 0
        self.finished = False
        self._last_pts: int | None = None
        self._step = max(1, round(1 / (reader.rate * reader.video.time_base))) if reader.video.time_base else 1

    def write(self, image: Image.Image, pts: int | None) -> None:
        frame = self.av.VideoFrame.from_image(image)
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            # A frame without a timestamp, or out of order: the next slot at the average rate.
            pts = 0 if self._last_pts is None else self._last_pts + self._step
        frame.pts, frame.time_base = pts, self.video.time_base
        self._last_pts = pts
        self._mux(self.video.encode(frame))
        self.frames += 1

    def copy(self, packet: Any) -> None:
        out = self.audio.get(packet.stream.index)
        if out is not None:
            packet.stream = out
            self._mux([packet])

    def _mux(self, packets: Any) -> None:
        try:
            self.container.mux(packets)
        except (OSError, self.av.FFmpegError) as exc:
            # A full disk, or (at the first packet, when the header is written) a stream this container
            # cannot hold, such as PCM audio in an .mp4.
            raise UserError(f"cannot write {self.path}: {_reason(exc)}") from None

    def finish(self) -> None:
        """Flush the encoder, close the file and give it its name."""
        self._mux(self.video.encode(None))
        try:
            self.container.close()
            os.replace(self.partial, self.path)
        except (OSError, self.av.FFmpegError) as exc:
            raise UserError(f"cannot write {self.path}: {_reason(exc)}") from None
        self.finished = True

    def _discard(self) -> None:
        try:
            self.container.close()
        except Exception:
            pass
        self.partial.unlink(missing_ok=True)

    def abandon(self) -> None:
        """On a failure that is not the input's: no output."""
        self._discard()


def _encoder(container: Any, path: Path) -> tuple[str, dict[str, str]]:
    suffix = path.suffix.lower()
    if suffix == ".webm":
        return "libvpx-vp9", {"crf": str(VP9_CRF), "b": "0", "row-mt": "1"}
    if "h264" in container.supported_codecs or suffix in (".ts", ".mts", ".m2ts"):
        return "libx264", {"crf": str(CRF), "preset": "medium"}
    return container.default_video_codec, {}


def video_output_path(input_path: str | os.PathLike[str], output_dir: str | os.PathLike[str]) -> Path:
    """Where `translate_video` writes: OUTPUT_DIR/NAME with the input's name and container."""
    return Path(output_dir) / Path(input_path).name


def translate_video(
    model: UGATIT,
    input_path: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    direction: Direction = "a2b",
    *,
    batch_size: int = 8,
    size: int | None = None,
    face_crop: bool = False,
    progress: bool = False,
    on_message: Callable[[str], None] | None = None,
) -> VideoResult:
    """Translate the video `input_path` into `output_dir` (see the module docstring). Raises `UserError`
    when the file cannot be opened or holds no video, or when the output cannot be written; a video
    that cannot be decoded to its end is translated as far as it reads, and `stopped` says so."""
    _check_batch_size(batch_size)
    resolve_size(model, size)
    input_path, output_dir = Path(input_path), Path(output_dir)
    if not input_path.is_file():
        raise UserError(f"input not found: {input_path}")
    output = video_output_path(input_path, output_dir)
    if output.exists() and output.resolve() == input_path.resolve():
        raise UserError(f"writing {output} would overwrite the input {input_path}: choose another output folder")
    if face_crop:
        check_face_detector()
    started = time.perf_counter()  # both passes count in the rate
    tracked = _track_faces(input_path, progress) if face_crop else None

    reader = _Reader.open(input_path)
    try:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot write to output folder {output_dir}: {exc.strerror or exc}") from None
        writer: _Writer | None = None
        flicker = _Flicker()
        faces_used = 0
        total = reader.announced or _estimate_frames(reader)
        pending: list[_Frame] = []

        def flush() -> None:
            nonlocal writer, faces_used
            if not pending:
                return
            if writer is None:
                writer = _Writer(output, reader, pending[0].image.size)
                for packet in early_audio:
                    writer.copy(packet)
                early_audio.clear()
            outputs, faces_used = _translate_frames(model, pending, direction, batch_size, size, tracked, faces_used)
            for frame, image in zip(pending, outputs):
                flicker.add(np.asarray(frame.image), np.asarray(image))
                writer.write(image, frame.pts)
            bar.update(len(pending))
            pending.clear()

        early_audio: list[Any] = []  # audio met before the first frame decided the output's size

        def on_audio(packet: Any) -> None:
            if writer is None:
                early_audio.append(packet)
            else:
                writer.copy(packet)

        try:
            with progress_bar(total or 0, "translating", "frame", enabled=progress, leave=False) as bar:
                for frame in reader.frames(on_audio):
                    pending.append(frame)
                    if len(pending) >= batch_size:
                        flush()
                flush()
            if writer is not None:
                writer.finish()
        except KeyboardInterrupt:
            if writer is not None and not writer.finished:
                writer.finish()  # Ctrl-C keeps what was translated, as a playable file
            raise
        except BaseException:
            if writer is not None and not writer.finished:
                writer.abandon()  # a failure that is not the input's: no half-written output
            raise
        if writer is None:
            why = reader.stopped or "it holds no frames"
            raise UserError(f"nothing translated from {input_path}: {why}")
        seconds = time.perf_counter() - started
        result = VideoResult(
            source=input_path,
            output=output,
            frames=writer.frames,
            announced=reader.announced,
            rate=reader.rate,
            size=reader.size or (0, 0),
            audio=[s.codec_context.name for s in reader.audio],
            seconds=seconds,
            flicker=flicker.result(),
            faces=faces_used if face_crop else None,
            stopped=reader.stopped,
        )
    finally:
        reader.close()
    if on_message is not None and result.stopped:
        on_message(f"{input_path}: {result.stopped}")
    return result


def _estimate_frames(reader: _Reader) -> int | None:
    if reader.end_time is None:
        return None
    return max(1, round(reader.end_time * float(reader.rate)))


def _translate_frames(
    model: UGATIT,
    frames: list[_Frame],
    direction: Direction,
    batch_size: int,
    size: int | None,
    tracked: list[Box | None] | None,
    faces_used: int,
) -> tuple[list[Image.Image], int]:
    """The output image of each frame: translated whole, or (with a track) its face square translated
    and pasted back, or the frame itself where no face is tracked."""
    if tracked is None:
        return [
            t.image
            for t in translate_images(model, [f.image for f in frames], direction, size=size, batch_size=batch_size)
        ], faces_used
    outputs: list[Image.Image] = [f.image for f in frames]
    squares = []
    for k, frame in enumerate(frames):
        face = tracked[frame.index] if frame.index < len(tracked) else None
        if face is not None:
            squares.append((k, square_around(face, frame.image.size)))
    if squares:
        crops = [frames[k].image.crop(square.as_tuple()) for k, square in squares]
        translated = translate_images(model, crops, direction, size=size, batch_size=batch_size)
        for (k, square), item in zip(squares, translated):
            outputs[k] = paste_back(frames[k].image, square, item.image)
    return outputs, faces_used + len(squares)


def _track_faces(path: Path, progress: bool) -> list[Box | None]:
    """The first pass of a face-cropped video: the detections in every frame, smoothed into a track."""
    reader = _Reader.open(path)
    try:
        detections: list[list[Box]] = []
        total = reader.announced or _estimate_frames(reader)
        with progress_bar(total or 0, "finding faces", "frame", enabled=progress, leave=False) as bar:
            for frame in reader.frames():
                detections.append(detect_faces(frame.image))
                bar.update(1)
        return smooth_track(detections, float(reader.rate))
    finally:
        reader.close()


class _Flicker:
    """Running means of the change between consecutive frames, of the input and of the output."""

    def __init__(self) -> None:
        self.previous: tuple[np.ndarray, np.ndarray] | None = None
        self.sums = [0.0, 0.0]
        self.pairs = 0

    def add(self, source: np.ndarray, output: np.ndarray) -> None:
        source, output = source.astype(np.int16), output.astype(np.int16)
        if self.previous is not None:
            self.sums[0] += float(np.abs(output - self.previous[1]).mean())
            self.sums[1] += float(np.abs(source - self.previous[0]).mean())
            self.pairs += 1
        self.previous = (source, output)

    def result(self) -> tuple[float, float]:
        if not self.pairs:
            return (0.0, 0.0)
        return (self.sums[0] / self.pairs, self.sums[1] / self.pairs)


def _reason(exc: BaseException) -> str:
    """FFmpeg's words for an error, without the errno and the path it repeats."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).rstrip(".")
