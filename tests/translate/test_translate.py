"""The translation library: in-memory translation, folders to files, the resize policy, index.html."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import tiny
from ugatit.data import eval_transform, find_images, tensor_to_uint8
from ugatit.errors import UserError
from ugatit.nn.model import UGATIT
from ugatit.translate import (
    INDEX_NAME,
    THUMBNAIL_DIR,
    TranslateOptions,
    resolve_size,
    translate_folder,
    translate_images,
    translate_paths,
    write_index_html,
)

SIZE = 32
ATTENTION = TranslateOptions(attention=True)


def tiny_model(light: bool, seed: int = 0) -> UGATIT:
    return tiny(light, seed=seed, discriminators=False, img_size=SIZE).eval()


@pytest.fixture(scope="module")
def light() -> UGATIT:
    return tiny_model(light=True)


@pytest.fixture(scope="module")
def full() -> UGATIT:
    return tiny_model(light=False)


def noise_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)


def write_images(folder: Path, sizes: dict[str, tuple[int, int]]) -> dict[str, Path]:
    """Noise images at folder/NAME for each NAME -> (width, height); sub-folders are created."""
    written = {}
    for i, (name, (w, h)) in enumerate(sizes.items()):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        noise_image(w, h, seed=i).save(path)
        written[name] = path
    return written


def direct(model: UGATIT, img: Image.Image, direction: str = "a2b", side: int = SIZE) -> np.ndarray:
    """The model's own translation of one image at `side` px, as uint8 pixels."""
    return tensor_to_uint8(model.translate(eval_transform(img, side)[None], direction).image)[0]


class ImageLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.srcs.append(values["src"])
        elif tag == "a":
            self.hrefs.append(values["href"])


def index_links(folder: Path) -> ImageLinks:
    parser = ImageLinks()
    parser.feed((folder / INDEX_NAME).read_text(encoding="utf-8"))
    return parser


# --- In memory ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_in_memory_translation_is_the_models(light, direction):
    img = noise_image(SIZE, SIZE)
    [out] = translate_images(light, [img], direction)
    assert out.image.mode == "RGB" and out.image.size == (SIZE, SIZE)
    np.testing.assert_array_equal(np.asarray(out.image), direct(light, img, direction))
    assert out.heatmap.shape == (SIZE // 4, SIZE // 4) and out.cam_logit.shape == (2,)


def test_directions_use_different_generators(light):
    img = noise_image(SIZE, SIZE)
    a2b, b2a = (np.asarray(translate_images(light, [img], d)[0].image) for d in ("a2b", "b2a"))
    assert not np.array_equal(a2b, b2a)


def test_any_size_and_aspect_ratio_comes_back_at_its_own_size(light):
    sizes = [(40, 30), (17, 50), (100, 20), (32, 32), (5, 7)]
    images = [noise_image(w, h, seed=i) for i, (w, h) in enumerate(sizes)]
    outs = translate_images(light, images, batch_size=2)
    assert [o.image.size for o in outs] == sizes
    for img, out in zip(images, outs):
        # Policy: resize to the model size, translate, resize the output back (bicubic).
        expected = Image.fromarray(direct(light, img)).resize(img.size, Image.Resampling.BICUBIC)
        np.testing.assert_array_equal(np.asarray(out.image), np.asarray(expected))
        assert out.attention_overlay().size == img.size
        assert out.attention_rgb().shape == (img.height, img.width, 3)


def test_restore_size_false_keeps_the_model_size(light):
    [out] = translate_images(light, [noise_image(40, 30)], restore_size=False)
    assert out.image.size == (SIZE, SIZE)


def test_batching_does_not_change_results(light):
    images = [noise_image(SIZE, SIZE, seed=i) for i in range(3)]
    one = translate_images(light, images, batch_size=1)
    three = translate_images(light, images, batch_size=3)
    for a, b in zip(one, three):
        diff = np.abs(np.asarray(a.image, dtype=int) - np.asarray(b.image, dtype=int))
        assert diff.max() <= 1


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_any_image_mode_is_accepted(light, mode):
    [out] = translate_images(light, [noise_image(24, 36, mode=mode)])
    assert out.image.mode == "RGB" and out.image.size == (24, 36)


def test_light_model_runs_at_other_sizes(light):
    img = noise_image(50, 40)
    [out] = translate_images(light, [img], size=64)
    assert out.image.size == (50, 40)
    assert out.heatmap.shape == (16, 16)
    [raw] = translate_images(light, [img], size=64, restore_size=False)
    np.testing.assert_array_equal(np.asarray(raw.image), direct(light, img, side=64))


def test_resolve_size(light, full):
    assert resolve_size(light) == SIZE and resolve_size(full) == SIZE
    assert resolve_size(light, 64) == 64 and resolve_size(full, SIZE) == SIZE
    for bad in (30, 28, 33):
        with pytest.raises(UserError, match="multiple of 4 and at least 32"):
            resolve_size(light, bad)
    with pytest.raises(UserError, match=r"full model at 64 px: it was trained at 32 px"):
        resolve_size(full, 64)


def test_full_model_translates_at_its_size(full):
    img = noise_image(48, 20)
    [out] = translate_images(full, [img])
    assert out.image.size == (48, 20)
    with pytest.raises(UserError, match="full model"):
        translate_images(full, [img], size=64)


# --- Files and folders -------------------------------------------------------------------------------------


@pytest.fixture
def nested(tmp_path) -> Path:
    inp = tmp_path / "in"
    write_images(inp, {"a.png": (40, 30), "sub/b.jpg": (17, 50), "sub/deeper/c.bmp": (32, 32), "d.webp": (64, 20)})
    return inp


def test_folder_keeps_names_subfolders_and_sizes(light, nested, tmp_path):
    out = tmp_path / "out"
    results = translate_folder(light, nested, out)
    assert all(r.ok for r in results)
    expected = {"a.png": (40, 30), "sub/b.png": (17, 50), "sub/deeper/c.png": (32, 32), "d.png": (64, 20)}
    for name, size in expected.items():
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.size == size and img.mode == "RGB"
    # Only the translations are visible to find_images (and so to `ugatit eval --fake out`).
    assert sorted(p.relative_to(out).as_posix() for p in find_images(out)) == sorted(expected)
    assert not list(out.rglob("*_attention.png"))
    # Each output is the model's translation, resized back.
    with Image.open(nested / "sub/b.jpg") as src, Image.open(out / "sub/b.png") as got:
        want = Image.fromarray(direct(light, src.convert("RGB"))).resize(src.size, Image.Resampling.BICUBIC)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_attention_overlays_and_index(light, nested, tmp_path):
    out = tmp_path / "out"
    results = translate_folder(light, nested, out, "b2a", TranslateOptions(attention=True))
    for r in results:
        assert r.attention is not None and r.attention.name.endswith("_attention.png")
        with Image.open(r.attention) as overlay, Image.open(r.source) as src:
            assert overlay.size == src.size
        assert r.thumbnail is not None and r.thumbnail.is_relative_to(out / THUMBNAIL_DIR)
    links = index_links(out)
    assert sorted(links.srcs) == sorted(links.hrefs)
    targets = {(out / src).resolve() for src in links.srcs}
    for src in links.srcs:
        assert not os.path.isabs(src) and (out / src).is_file(), src
    for r in results:
        assert {r.output.resolve(), r.attention.resolve(), r.thumbnail.resolve()} <= targets
    assert (out / "sub/deeper/c_attention.png").is_file()


def test_thumbnails_are_small(light, tmp_path):
    write_images(tmp_path / "in", {"big.png": (600, 300)})
    [r] = translate_folder(light, tmp_path / "in", tmp_path / "out")
    with Image.open(r.thumbnail) as thumb:
        assert thumb.size == (256, 128)
    with Image.open(r.output) as img:
        assert img.size == (600, 300)


def test_bad_files_are_skipped_and_reported(light, tmp_path):
    inp = tmp_path / "in"
    write_images(inp, {"a.png": (32, 32), "c.png": (20, 20)})
    (inp / "b.png").write_bytes(b"not an image")
    good = (inp / "a.png").read_bytes()
    (inp / "d.jpg").write_bytes(good[: len(good) // 2])  # truncated
    skipped = []
    results = translate_folder(
        light,
        inp,
        tmp_path / "out",
        options=TranslateOptions(batch_size=3),
        on_skip=lambda p, why: skipped.append((p, why)),
    )
    assert [r.name for r in results] == ["a.png", "b.png", "c.png", "d.jpg"]  # input order
    assert [r.ok for r in results] == [True, False, True, False]
    assert [p.name for p, _ in skipped] == ["b.png", "d.jpg"]
    assert all(why for _, why in skipped)
    assert not (tmp_path / "out/b.png").exists()
    page = (tmp_path / "out" / INDEX_NAME).read_text()
    assert "Skipped" in page and "b.png" in page and "d.jpg" in page


def test_single_file_input(light, tmp_path):
    [src] = write_images(tmp_path, {"photo.jpg": (30, 45)}).values()
    [r] = translate_folder(light, src, tmp_path / "out", options=ATTENTION)
    assert r.output == tmp_path / "out/photo.png" and r.attention == tmp_path / "out/photo_attention.png"
    assert (tmp_path / "out" / INDEX_NAME).is_file()


def test_names_differing_only_in_extension_do_not_collide(light, tmp_path):
    inp = tmp_path / "in"
    write_images(inp, {"x.jpg": (32, 32), "x.png": (40, 40), "y.png": (32, 32), "y_attention.png": (36, 36)})
    results = translate_folder(light, inp, tmp_path / "out", options=ATTENTION)
    written = [p for r in results for p in (r.output, r.attention)]
    assert len({p.as_posix().lower() for p in written}) == 8  # nothing overwritten
    assert {r.name: r.output.name for r in results} == {
        "x.jpg": "x.jpg.png",
        "x.png": "x.png.png",
        "y.png": "y.png",
        "y_attention.png": "y_attention.png",
    }
    by_name = {r.name: r for r in results}
    with Image.open(by_name["y_attention.png"].output) as img:
        assert img.size == (36, 36)  # the translation was not replaced by y's overlay


def test_paths_without_root_use_file_names(light, tmp_path):
    paths = write_images(tmp_path / "in", {"one/a.png": (32, 32), "two/b.png": (32, 32)})
    results = translate_paths(light, list(paths.values()), tmp_path / "out")
    assert [r.output for r in results] == [tmp_path / "out/a.png", tmp_path / "out/b.png"]
    assert not (tmp_path / "out" / INDEX_NAME).exists()  # the index is translate_folder's


def test_index_links_inputs_when_there_are_no_thumbnails(light, tmp_path):
    paths = write_images(tmp_path / "in", {"a b.png": (32, 32)})  # a space: the link is %-quoted
    results = translate_paths(light, list(paths.values()), tmp_path / "out")
    assert results[0].thumbnail is None and not (tmp_path / "out" / THUMBNAIL_DIR).exists()
    write_index_html(results, tmp_path / "out")
    links = index_links(tmp_path / "out")
    assert links.srcs == ["../in/a%20b.png", "a%20b.png"]


def test_exif_orientation_is_applied(light, tmp_path):
    stored = noise_image(40, 20)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    (tmp_path / "in").mkdir()
    stored.save(tmp_path / "in/rotated.jpg", exif=exif)
    [r] = translate_folder(light, tmp_path / "in", tmp_path / "out", options=ATTENTION)
    for path in (r.output, r.attention, r.thumbnail):
        with Image.open(path) as img:
            assert img.size == (20, 40), path


def test_inputs_are_never_overwritten(light, tmp_path):
    inp = tmp_path / "in"
    paths = write_images(inp, {"a.png": (32, 32)})
    before = paths["a.png"].read_bytes()
    for out in (inp, inp / "sub", inp / "."):
        with pytest.raises(UserError, match="input folder or inside it"):
            translate_folder(light, inp, out)
    with pytest.raises(UserError, match="would overwrite the input"):
        translate_folder(light, paths["a.png"], inp)  # a.png -> in/a.png
    assert paths["a.png"].read_bytes() == before
    assert not (inp / "sub").exists()


def test_unusable_inputs_and_outputs(light, tmp_path):
    with pytest.raises(UserError, match="input not found"):
        translate_folder(light, tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images found"):
        translate_folder(light, tmp_path / "empty", tmp_path / "out")
    write_images(tmp_path / "in", {"a.png": (32, 32)})
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="exists and is not a folder"):
        translate_folder(light, tmp_path / "in", tmp_path / "file")
    with pytest.raises(UserError, match="is a file"):
        translate_folder(light, tmp_path / "in", tmp_path / "file/out")
    with pytest.raises(UserError, match="batch size"):
        TranslateOptions(batch_size=0)
    with pytest.raises(UserError, match="needs `face_crop=True`"):
        TranslateOptions(paste_back=True)
