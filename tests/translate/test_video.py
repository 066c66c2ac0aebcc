"""`ugatit translate` on video files, through the command line in a subprocess, on clips made here with
PyAV (H.264 + AAC in MP4), and the face track behind `--face-crop --paste-back` on a video.

How "frame N of the output is the translation of frame N of the input" is judged: the output is
H.264, which is lossy, so a decoded frame is not the translation itself. The test translates the
decoded input frames in this process, then encodes those translations itself with the settings `ugatit
translate` uses, and decodes them: what that round trip loses is the codec's loss on these very
frames (measured: 3.9 to 5.0 grey levels, mean absolute, on these 48 x 32 frames of an untrained
model's noise-like output). The output must lose no more than that plus `CODEC_SPREAD`, and must be
nearer to its own frame's translation than to any other frame's (the nearest other: 7.0 or more away).
The output cannot be compared with the round trip bit for bit: x264 run through FFmpeg here does not
give the same stream twice for the same frames (ten encodes of the same twelve frames gave four
different streams, each ~2 grey levels from the others), though each loses the same amount.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import tiny
from ugatit.config import Config
from ugatit.nn.model import UGATIT
from ugatit.translate import translate_images
from ugatit.translate.faces import Box, detect_faces, square_around
from ugatit.weights.export import export_generators

WIDTH, HEIGHT, FPS, FRAMES = 48, 32, 12, 12
BATCH = 4
SAMPLE_RATE = 16000
# How much more than the test's own round trip the output may lose (grey levels, mean absolute per
# frame): over ten encodes of the same frames on idle cores, a frame's loss varied by at most 0.07, but
# under load (load average 5.5, 2 cores) one frame lost 0.42 more than the round trip (the streams x264
# gives here differ from run to run, more on busy cores). 1.0 is that with room for other machines, and
# still far below the codec's loss itself (4 to 5) and the gap between frames (7 or more).
CODEC_SPREAD = 1.0


@pytest.fixture(scope="module")
def av(need):
    return need("av")


@pytest.fixture(scope="module")
def model() -> UGATIT:
    return tiny(discriminators=False).eval()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory) -> Path:
    return export_generators(model, Config(model=model.config), tmp_path_factory.mktemp("video") / "tiny.safetensors")


def scene(i: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Frame i of a test clip: a smooth gradient (what codecs handle well) with a red block moving across."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, (40 + 15 * i) % 256)], -1)
    img = img.astype(np.uint8)
    x0 = (2 + 3 * i) % (width - 12)
    img[8:20, x0 : x0 + 10] = (250, 40, 40)
    return img


def write_clip(
    av,
    path: Path,
    frames: list[np.ndarray],
    fps: int = FPS,
    audio: bool = True,
    rotation: int | None = None,
) -> Path:
    """An MP4 (H.264, and AAC audio: a 440 Hz tone lasting as long as the video) with the index at the
    front (faststart), so that a file cut short still opens."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        # One encoder thread: with several, x264 through PyAV gave other streams from the same frames on a
        # loaded machine (in one of them the face detector no longer saw a false face in the pan clip).
        video = out.add_stream("libx264", rate=fps, options={"crf": "18", "threads": "1"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if rotation is not None:
            video.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if audio else None
        for img in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(video.encode(None))
        if sound is not None:
            t = np.arange(round(SAMPLE_RATE * len(frames) / fps)) / SAMPLE_RATE
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for start in range(0, tone.shape[1], 1024):
                chunk = av.AudioFrame.from_ndarray(tone[:, start : start + 1024], format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


def decode(av, path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [np.asarray(frame.to_image()) for frame in container.decode(video=0)]


def audio_packets(av, path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def codec_loss(av, frames: list[np.ndarray], tmp: Path) -> list[float]:
    """What the encoder settings `ugatit translate` uses for MP4 lose on each of `frames` (see above)."""
    return [mad(a, b) for a, b in zip(round_trip(av, frames, tmp), frames)]


def round_trip(av, frames: list[np.ndarray], tmp: Path) -> list[np.ndarray]:
    """`frames` through the encoder settings `ugatit translate` uses for MP4, and back."""
    from ugatit.translate.video import CRF

    height, width = frames[0].shape[:2]
    with av.open(str(tmp), "w") as out:
        video = out.add_stream("libx264", rate=FPS, options={"crf": str(CRF), "preset": "medium"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for img in frames:
            out.mux(video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(video.encode(None))
    return decode(av, tmp)


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def run_cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as this process computes its reference (conftest)
    return subprocess.run(
        [sys.executable, "-m", "ugatit", "translate", "--no-progress", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_video_keeps_frames_rate_size_and_audio_and_translates_each_frame(av, model, checkpoint, tmp_path):
    clip = write_clip(av, tmp_path / "clip.mp4", [scene(i) for i in range(FRAMES)])
    out = tmp_path / "out"
    done = run_cli("--checkpoint", checkpoint, "--input", clip, "--output", out, "--batch-size", BATCH)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and "Traceback" not in done.stdout
    result = out / "clip.mp4"
    with av.open(str(clip)) as src, av.open(str(result)) as dst:
        vin, vout = src.streams.video[0], dst.streams.video[0]
        assert vout.frames == vin.frames == FRAMES
        assert vout.average_rate == vin.average_rate == FPS
        assert (vout.width, vout.height) == (WIDTH, HEIGHT)
        assert vout.codec_context.name == "h264"
        times_in = [float(f.pts * f.time_base) for f in src.decode(video=0)]
        times_out = [float(f.pts * f.time_base) for f in dst.decode(video=0)]
        assert times_out == times_in  # every frame at its own time: the duration is the input's
        assert [s.codec_context.name for s in dst.streams.audio] == ["aac"]
        assert dst.streams.audio[0].sample_rate == SAMPLE_RATE
    # Audio copied packet for packet, not re-encoded.
    assert audio_packets(av, result) == audio_packets(av, clip)

    inputs = decode(av, clip)
    pictures = [Image.fromarray(x) for x in inputs]
    translations = [np.asarray(t.image) for t in translate_images(model, pictures, batch_size=BATCH)]
    outputs = decode(av, result)
    assert len(outputs) == FRAMES
    loss = codec_loss(av, translations, tmp_path / "reference.mp4")
    for n, (got, want) in enumerate(zip(outputs, translations)):
        assert mad(got, want) <= loss[n] + CODEC_SPREAD, (n, mad(got, want), loss[n])
        others = [mad(got, t) for m, t in enumerate(translations) if m != n]
        assert mad(got, want) < min(others), (n, mad(got, want), min(others))

    # The flicker line: the mean change between consecutive frames, before encoding, of output and input.
    flicker_out = np.mean([mad(a, b) for a, b in itertools.pairwise(translations)])
    flicker_in = np.mean([mad(a, b) for a, b in itertools.pairwise(inputs)])
    assert f"differ by {flicker_out:.2f} grey levels on average, the input's by {flicker_in:.2f}" in done.stdout
    assert f"translated {FRAMES} frames (a2b, {WIDTH}x{HEIGHT}, 12 frames/s, audio copied (aac))" in done.stdout


def test_a_video_cut_short_keeps_what_was_written_and_says_where_it_stopped(av, checkpoint, tmp_path):
    whole = write_clip(av, tmp_path / "whole.mp4", [scene(i) for i in range(24)])
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    readable = len(decode(av, cut))
    assert 0 < readable < 24  # what any player gets from it
    out = tmp_path / "out"
    done = run_cli("--checkpoint", checkpoint, "--input", cut, "--output", out)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"ends after {readable} of the 24 frames its header announces" in done.stderr, done.stderr
    assert f"the {readable} frames read are translated in {out / 'cut.mp4'}" in done.stderr
    # A complete, playable file with those frames, and its audio up to there.
    assert len(decode(av, out / "cut.mp4")) == readable
    assert audio_packets(av, out / "cut.mp4")
    assert not list(out.glob(".*partial*"))


def test_a_rotated_phone_video_comes_out_upright(av, checkpoint, tmp_path):
    # A portrait scene stored as landscape frames with a display rotation, as phones record. Without a
    # face, --face-crop --paste-back passes every frame through: the output is the input shown upright.
    upright = [np.ascontiguousarray(scene(i, 32, 48)) for i in range(6)]
    stored = [np.ascontiguousarray(np.rot90(img, k=-1)) for img in upright]  # turned a quarter clockwise
    clip = write_clip(av, tmp_path / "phone.mp4", stored, audio=False, rotation=90)  # shown turned back
    out = tmp_path / "out"
    done = run_cli("--checkpoint", checkpoint, "--input", clip, "--output", out, "--face-crop", "--paste-back")
    assert done.returncode == 0, done.stderr
    assert "no face in any frame: all passed through" in done.stdout
    frames = decode(av, out / "phone.mp4")
    assert frames[0].shape == (48, 32, 3)
    # What a player shows: the stored frames turned back a quarter counter-clockwise.
    shown = [np.ascontiguousarray(np.rot90(img, k=1)) for img in decode(av, clip)]
    loss = codec_loss(av, shown, tmp_path / "shown.mp4")
    for n, (got, want) in enumerate(zip(frames, shown)):
        assert mad(got, want) <= loss[n] + CODEC_SPREAD, n
        assert mad(got, np.rot90(want, k=2)) > 10 * loss[n]  # not upside down


def astronaut_pan(need, frames: int, side: int = 160, step: int = 3) -> list[np.ndarray]:
    """A camera panning across scikit-image's astronaut photo (halved to 256 px) by `step` px a frame."""
    photo = Image.fromarray(need("skimage.data").astronaut()).resize((256, 256), Image.Resampling.BILINEAR)
    return [np.asarray(photo.crop((10 + step * i, 0, 10 + step * i + side, side))) for i in range(frames)]


def test_face_crop_paste_back_on_a_video(av, need, model, checkpoint, tmp_path):
    need("cv2")
    face_frames = astronaut_pan(need, 10)
    # Then the wall beside her (no face), long enough that the track lets go: those frames pass through.
    wall = [np.asarray(Image.fromarray(f).crop((0, 0, 40, 40)).resize((160, 160))) for f in face_frames[:8]]
    clip = write_clip(av, tmp_path / "pan.mp4", face_frames + wall)
    out = tmp_path / "out"
    done = run_cli("--checkpoint", checkpoint, "--input", clip, "--output", out, "--face-crop", "--paste-back")
    assert done.returncode == 0, done.stderr
    assert "a face in 10)" in done.stdout, done.stdout
    inputs, outputs = decode(av, clip), decode(av, out / "pan.mp4")
    assert len(outputs) == 18
    loss = codec_loss(av, inputs, tmp_path / "inputs.mp4")
    for n in range(10, 18):  # passed through: the input, up to the codec
        assert mad(outputs[n], inputs[n]) <= loss[n] + CODEC_SPREAD, n
    for n in range(10):  # translated around the face, the rest of the frame left (up to the codec) alone
        face = detect_faces(Image.fromarray(inputs[n]))[0]
        square = square_around(face, (160, 160))
        inside = (slice(face.top, face.bottom), slice(face.left, face.right))
        assert mad(outputs[n][inside], inputs[n][inside]) > 20, n
        assert mad(outputs[n][:, : max(1, square.left - 8)], inputs[n][:, : max(1, square.left - 8)]) < 6, n


def test_the_face_track_is_steady_where_the_detector_jitters(av, need, tmp_path):
    need("cv2")
    from ugatit.translate.faces import pick_face
    from ugatit.translate.video import _track_faces

    step = 2  # the camera pans 2 px a frame
    clip = write_clip(av, tmp_path / "pan.mp4", astronaut_pan(need, 24, step=step), audio=False)
    found = [detect_faces(Image.fromarray(f)) for f in decode(av, clip)]
    followed: list[Box] = []  # the detection that continues the face, unsmoothed
    for boxes in found:
        followed.append(pick_face(boxes, followed[-1] if followed else None))
    track = _track_faces(clip, progress=False)
    assert all(box is not None for box in track)

    def centres(boxes: list[Box]) -> np.ndarray:
        return np.array([(b.left + b.right) / 2 for b in boxes])

    def wobble(boxes: list[Box]) -> float:
        # How much the box's per-frame motion departs from the camera's steady pan, on average.
        return float(np.abs(np.diff(centres(boxes)) + step).mean())

    # Measured on this clip: in one frame the detector also sees a larger false face 60 px away, where
    # the largest box jumps 64.5 px; the track stays on the face, and follows the pan within 0.1 px a
    # frame, where the detector's own box wobbles by 0.4. Whether a detector sees that false face depends
    # on OpenCV's build, so it is not asserted here: test_faces.py's smooth_track tests put a false face
    # in the detections themselves.
    assert np.abs(np.diff(centres(track))).max() <= step + 1
    assert wobble(track) < 0.5 * wobble(followed), (wobble(track), wobble(followed))
    assert wobble(followed) > 0.2  # the detector does jitter here


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--attention"], "--attention writes images: it is not available for a video input"),
        (["--face-crop"], "on a video, --face-crop needs --paste-back"),
        (["--paste-back"], "--paste-back puts the translated face crop back into the photo: it needs --face-crop"),
    ],
)
def test_video_flag_errors_are_one_line(av, checkpoint, tmp_path, extra, message):
    clip = write_clip(av, tmp_path / "clip.mp4", [scene(i) for i in range(2)], audio=False)
    done = run_cli("--checkpoint", checkpoint, "--input", clip, "--output", tmp_path / "out", *extra)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_a_video_is_one_line(av, checkpoint, tmp_path):
    fake = tmp_path / "holiday.mp4"
    fake.write_text("not a video at all")
    done = run_cli("--checkpoint", checkpoint, "--input", fake, "--output", tmp_path / "out")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"cannot read video {fake}: Invalid data found when processing input" in done.stderr
