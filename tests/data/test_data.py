"""The data layer: discovery, decoding of every mode, transforms, and the resumable sampler."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ugatit.config import Config
from ugatit.data import (
    BadImageError,
    BadImageWarning,
    FileSource,
    MemorySource,
    UnpairedLoader,
    as_source,
    eval_transform,
    find_images,
    load_rgb,
    resolve_domains,
    sized_batches,
    tensor_to_uint8,
    to_pil,
    to_rgb,
    to_tensor,
    train_transform,
)
from ugatit.errors import UserError

# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def noise_image(seed: int, size: tuple[int, int] = (12, 10)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def solid_images(count: int, channel: int) -> list[Image.Image]:
    """Images whose identity survives flips, resizes and crops: image k is solid 20*k+5 in one channel."""
    images = []
    for k in range(count):
        color = [0, 0, 0]
        color[channel] = 20 * k + 5
        images.append(Image.new("RGB", (9, 7), tuple(color)))
    return images


def identities(batch: torch.Tensor, channel: int) -> list[int]:
    values = tensor_to_uint8(batch)[:, 0, 0, channel].astype(int)
    assert all((v - 5) % 20 == 0 for v in values), values
    return [(v - 5) // 20 for v in values]


def take(loader: UnpairedLoader, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [next(loader) for _ in range(count)]


def assert_same_batches(left, right) -> None:
    assert len(left) == len(right)
    for (a1, b1), (a2, b2) in zip(left, right):
        assert torch.equal(a1, a2)
        assert torch.equal(b1, b2)


def save_png(img: Image.Image, path: Path, **params) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **params)
    return path


def make_bad_files(folder: Path) -> dict[str, Path]:
    """A corrupt JPEG (random bytes), a truncated PNG, a truncated JPEG and a text file posing as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = {}
    bad["corrupt"] = folder / "corrupt.jpg"
    bad["corrupt"].write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    buffer = io.BytesIO()
    noise_image(1, (64, 64)).save(buffer, "PNG")
    bad["truncated_png"] = folder / "truncated.png"
    bad["truncated_png"].write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    buffer = io.BytesIO()
    noise_image(2, (64, 64)).save(buffer, "JPEG", quality=95)
    bad["truncated_jpg"] = folder / "truncated.jpg"
    bad["truncated_jpg"].write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    bad["text"] = folder / "notes.png"
    bad["text"].write_text("this is not an image\n")
    return bad


# ----------------------------------------------------------------------------------------------
# discovery
# ----------------------------------------------------------------------------------------------


def test_find_images_is_recursive_case_insensitive_and_sorted(tmp_path: Path) -> None:
    names = ["b.JPG", "a.png", "sub/c.Jpeg", "sub/deeper/d.TIFF", "sub/e.tif", "f.BMP", "g.WebP"]
    for name in names + ["readme.txt", "sub/labels.csv", "h.gif", ".hidden.jpg", ".cache/i.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = find_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.png",
        "b.JPG",
        "f.BMP",
        "g.WebP",
        "sub/c.Jpeg",
        "sub/deeper/d.TIFF",
        "sub/e.tif",
    ]


def test_find_images_missing_or_empty_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope"):
        find_images(tmp_path / "nope")
    empty = tmp_path / "empty_domain"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match="empty_domain"):
        find_images(empty)
    with pytest.raises(UserError, match="empty_domain"):
        UnpairedLoader(empty, [noise_image(0)], img_size=8)


def test_resolve_domains_standard_layout(tmp_path: Path) -> None:
    for name in ("trainA", "trainB", "testA", "testB"):
        (tmp_path / name).mkdir()
    assert resolve_domains(tmp_path) == (tmp_path / "trainA", tmp_path / "trainB")
    assert resolve_domains(tmp_path, split="test") == (tmp_path / "testA", tmp_path / "testB")


def test_resolve_domains_missing_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "trainA").mkdir()
    with pytest.raises(UserError, match="trainB"):
        resolve_domains(tmp_path)
    with pytest.raises(UserError, match="testA"):
        resolve_domains(tmp_path, split="test")
    with pytest.raises(UserError, match="no_such_root"):
        resolve_domains(tmp_path / "no_such_root")


def test_resolve_domains_explicit_folders(tmp_path: Path) -> None:
    horses, zebras = tmp_path / "horses", tmp_path / "zebras"
    horses.mkdir()
    zebras.mkdir()
    assert resolve_domains(domain_a=horses, domain_b=str(zebras)) == (horses, zebras)
    with pytest.raises(UserError, match="missing_b"):
        resolve_domains(domain_a=horses, domain_b=tmp_path / "missing_b")
    with pytest.raises(UserError, match="domain B"):
        resolve_domains(domain_a=horses)
    with pytest.raises(UserError, match="not both"):
        resolve_domains(tmp_path, domain_a=horses, domain_b=zebras)
    with pytest.raises(UserError):
        resolve_domains()


# ----------------------------------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------------------------------


def _gradient16() -> np.ndarray:
    return np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (8, 1))


@pytest.mark.parametrize(
    "mode, suffix",
    [
        ("RGB", ".bmp"),
        ("RGB", ".webp"),
        ("RGB", ".tif"),
        ("1", ".png"),
        ("L", ".png"),
        ("LA", ".png"),
        ("P", ".png"),
        ("RGBA", ".png"),
        ("CMYK", ".jpg"),
        ("CMYK", ".tiff"),
        ("I;16", ".png"),
    ],
)
def test_every_mode_loads_as_rgb(tmp_path: Path, mode: str, suffix: str) -> None:
    if mode == "I;16":
        img = Image.fromarray(_gradient16())
    else:
        img = noise_image(3, (16, 8)).convert(mode)
    path = save_png(img, tmp_path / f"image{suffix}")
    with Image.open(path) as stored:
        assert stored.mode == mode  # the file really holds this mode
    loaded = load_rgb(path)
    assert loaded.mode == "RGB"
    assert loaded.size == img.size


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = save_png(Image.fromarray(_gradient16()), tmp_path / "deep.png")
    pixels = np.asarray(load_rgb(path))[0, :, 0].astype(int)
    assert pixels[0] == 0 and pixels[-1] == 255
    assert np.all(np.diff(pixels) >= 0)
    assert pixels[32] == round(_gradient16()[0, 32] / 257)  # linear: v * 255 / 65535
    assert (pixels == 255).sum() == 1  # not a white image


def test_int32_and_float_modes_are_scaled(tmp_path: Path) -> None:
    as_int = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32))
    assert as_int.mode == "I"
    assert np.asarray(to_rgb(as_int))[0, :, 0].tolist() == [0, 128, 255]
    as_float = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert as_float.mode == "F"
    assert np.asarray(to_rgb(as_float))[0, :, 1].tolist() == [0, 128, 255]
    wide = Image.fromarray(np.array([[-10.0, 0.0, 10.0]], dtype=np.float32))
    assert np.asarray(to_rgb(wide))[0, :, 2].tolist() == [0, 128, 255]


def test_transparency_is_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(10, 20, 30, 0), (10, 20, 30, 255), (0, 0, 0, 128)])
    loaded = np.asarray(load_rgb(save_png(rgba, tmp_path / "rgba.png")))
    assert loaded[0, 0].tolist() == [255, 255, 255]
    assert loaded[0, 1].tolist() == [10, 20, 30]
    assert abs(int(loaded[0, 2, 0]) - 127) <= 1

    palette = Image.new("P", (2, 1))
    palette.putpalette([200, 0, 0, 0, 0, 200] + [0] * 762)
    palette.putdata([0, 1])
    path = save_png(palette, tmp_path / "palette.png", transparency=0)
    with Image.open(path) as stored:
        assert stored.mode == "P" and "transparency" in stored.info
    assert np.asarray(load_rgb(path))[0].tolist() == [[255, 255, 255], [0, 0, 200]]

    gray_alpha = Image.new("LA", (1, 1), (0, 0))
    assert np.asarray(load_rgb(save_png(gray_alpha, tmp_path / "la.png")))[0, 0].tolist() == [255] * 3


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "portrait.jpg"
    noise_image(4, (40, 20)).save(path, exif=exif.tobytes())
    with Image.open(path) as stored:
        assert stored.size == (40, 20)
    assert load_rgb(path).size == (20, 40)


def test_bad_files_raise_bad_image_error_naming_the_path(tmp_path: Path) -> None:
    for path in make_bad_files(tmp_path).values():
        with pytest.raises(BadImageError) as info:
            load_rgb(path)
        assert info.value.path == str(path)
        assert str(path) in str(info.value)
        assert info.value.reason
    with pytest.raises(BadImageError, match="not found"):
        load_rgb(tmp_path / "gone.png")
    assert isinstance(BadImageError("x", "y"), UserError)


# ----------------------------------------------------------------------------------------------
# transforms
# ----------------------------------------------------------------------------------------------


def test_train_and_eval_transform_shapes_and_range() -> None:
    img = noise_image(5, (23, 17))
    generator = torch.Generator().manual_seed(0)
    train = train_transform(img, img_size=16, margin=6, generator=generator)
    assert train.shape == (3, 16, 16) and train.dtype == torch.float32
    assert train.min() >= -1 and train.max() <= 1
    test = eval_transform(img, img_size=16)
    assert test.shape == (3, 16, 16) and test.dtype == torch.float32
    white = to_tensor(Image.new("RGB", (4, 4), (255, 255, 255)))
    black = to_tensor(Image.new("RGB", (4, 4), (0, 0, 0)))
    assert torch.all(white == 1) and torch.all(black == -1)


def test_train_transform_is_flip_resize_crop() -> None:
    img = noise_image(6, (20, 20))
    # No margin and no flip: exactly the eval transform.
    plain = train_transform(img, 16, margin=0, flip=False, generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain, eval_transform(img, 16))
    # Over seeds, both flipped and unflipped crops occur, each equal to a crop of the resized image.
    resized = np.asarray(img.resize((20, 20), Image.Resampling.BILINEAR))
    flipped = np.asarray(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((20, 20), Image.Resampling.BILINEAR))
    seen_flip = set()
    for seed in range(20):
        out = tensor_to_uint8(train_transform(img, 16, margin=4, generator=torch.Generator().manual_seed(seed)))
        matches = [
            (source is flipped, top, left)
            for source in (resized, flipped)
            for top in range(5)
            for left in range(5)
            if np.array_equal(out, source[top : top + 16, left : left + 16])
        ]
        assert matches, f"seed {seed}: output is no crop of the resized image"
        seen_flip.add(matches[0][0])
    assert seen_flip == {True, False}


def test_tensor_to_uint8_inverts_to_tensor() -> None:
    img = noise_image(7, (11, 5))
    tensor = to_tensor(img)
    assert np.array_equal(tensor_to_uint8(tensor), np.asarray(img))
    assert np.array_equal(np.asarray(to_pil(tensor)), np.asarray(img))
    assert np.array_equal(np.asarray(to_pil(tensor[None])), np.asarray(img))
    batch = torch.stack([tensor, tensor])
    assert tensor_to_uint8(batch).shape == (2, 5, 11, 3)
    assert tensor_to_uint8(torch.full((3, 1, 1), 5.0)).ravel().tolist() == [255] * 3  # clipped
    assert to_pil(torch.zeros(1, 4, 4)).mode == "L"


# ----------------------------------------------------------------------------------------------
# sources
# ----------------------------------------------------------------------------------------------


def test_sources_from_folders_paths_and_images(tmp_path: Path) -> None:
    save_png(noise_image(0), tmp_path / "A" / "x.png")
    folder = as_source(tmp_path / "A")
    assert isinstance(folder, FileSource) and len(folder) == 1
    assert folder.name(0) == str(tmp_path / "A" / "x.png")
    assert isinstance(as_source([tmp_path / "A" / "x.png"]), FileSource)
    memory = as_source([Image.new("L", (3, 3))], label="synthetic A")
    assert isinstance(memory, MemorySource) and memory.load(0).mode == "RGB"
    assert memory.name(0) == "synthetic A[0]"
    assert as_source(memory) is memory


class LazyImages(Sequence):
    """A Sequence drawing its images on access, like synthetic.ShapesDataset."""

    def __init__(self, count: int):
        self.count, self.drawn = count, 0

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Image.Image:
        if not 0 <= index < self.count:
            raise IndexError(index)
        self.drawn += 1
        return noise_image(index)


def test_lazy_sequences_stay_lazy() -> None:
    lazy = LazyImages(1000)
    loader = UnpairedLoader(lazy, [noise_image(0)], img_size=4, batch_size=2, margin=0)
    next(loader)
    assert lazy.drawn <= 3  # as_source looked at one image, the batch drew two
    with pytest.raises(UserError):
        as_source([])


# ----------------------------------------------------------------------------------------------
# the unpaired sampler
# ----------------------------------------------------------------------------------------------


def make_loader(num_workers: int = 0, seed: int = 0, batch_size: int = 3, **kwargs) -> UnpairedLoader:
    domain_a = [noise_image(100 + k) for k in range(5)]
    domain_b = [noise_image(200 + k, (10, 14)) for k in range(7)]
    return UnpairedLoader(
        domain_a, domain_b, img_size=8, batch_size=batch_size, seed=seed, num_workers=num_workers, margin=4, **kwargs
    )


def test_loader_batch_shapes() -> None:
    real_a, real_b = next(make_loader())
    assert real_a.shape == (3, 3, 8, 8) and real_b.shape == (3, 3, 8, 8)
    assert real_a.dtype == torch.float32
    assert real_a.min() >= -1 and real_a.max() <= 1


def test_loader_is_seeded() -> None:
    assert_same_batches(take(make_loader(seed=3), 4), take(make_loader(seed=3), 4))
    first, other = take(make_loader(seed=3), 4), take(make_loader(seed=4), 4)
    assert any(not torch.equal(x[0], y[0]) for x, y in zip(first, other))


def test_loader_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    take(make_loader(), 2)
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_is_bit_identical(num_workers: int) -> None:
    uninterrupted = take(make_loader(num_workers=num_workers), 8)

    interrupted = make_loader(num_workers=num_workers)
    assert_same_batches(take(interrupted, 4), uninterrupted[:4])
    state = interrupted.state_dict()
    interrupted.close()
    # 4 batches of 3 consumed, whatever the workers prefetched: 12 = 2 epochs of 5 + 2 (A), 1 * 7 + 5 (B).
    assert state["A"] == {"epoch": 2, "index": 2, "size": 5}
    assert state["B"] == {"epoch": 1, "index": 5, "size": 7}

    resumed = make_loader(num_workers=num_workers)
    resumed.load_state_dict(state)
    assert_same_batches(take(resumed, 4), uninterrupted[4:])
    resumed.close()


def test_resume_across_worker_counts_and_mid_iteration() -> None:
    reference = take(make_loader(num_workers=0), 6)
    with make_loader(num_workers=2) as with_workers:
        take(with_workers, 2)
        state = with_workers.state_dict()
    without_workers = make_loader(num_workers=0)
    without_workers.load_state_dict(state)
    assert_same_batches(take(without_workers, 4), reference[2:])
    # Loading a state into a loader that is already iterating rewinds it.
    without_workers.load_state_dict(state)
    assert_same_batches(take(without_workers, 2), reference[2:4])


def test_domains_are_shuffled_independently_and_each_epoch_anew() -> None:
    count = 8
    loader = UnpairedLoader(solid_images(count, 0), solid_images(count, 1), img_size=4, batch_size=1, seed=0, margin=2)
    order_a, order_b = [], []
    for _ in range(3 * count):
        real_a, real_b = next(loader)
        order_a += identities(real_a, 0)
        order_b += identities(real_b, 1)
    epochs_a = [order_a[e * count : (e + 1) * count] for e in range(3)]
    epochs_b = [order_b[e * count : (e + 1) * count] for e in range(3)]
    for epoch in epochs_a + epochs_b:
        assert sorted(epoch) == list(range(count))  # every image once per epoch
    assert epochs_a[0] != epochs_b[0]  # independent shuffles
    assert len({tuple(e) for e in epochs_a}) == 3  # a new permutation every epoch
    assert loader.state_dict()["A"] == {"epoch": 3, "index": 0, "size": count}


def test_batches_run_across_epoch_boundaries() -> None:
    loader = UnpairedLoader(solid_images(3, 0), solid_images(2, 1), img_size=4, batch_size=5, margin=0)
    real_a, real_b = next(loader)
    ids_a, ids_b = identities(real_a, 0), identities(real_b, 1)
    assert sorted(ids_a[:3]) == [0, 1, 2] and sorted(ids_b[:2]) == [0, 1] and sorted(ids_b[2:4]) == [0, 1]
    assert loader.state_dict()["A"]["epoch"] == 1 and loader.state_dict()["B"]["epoch"] == 2


@pytest.mark.parametrize("num_workers", [0, 2])
def test_bad_files_are_skipped_and_reported_once(tmp_path: Path, num_workers: int) -> None:
    domain_a = tmp_path / "trainA"
    for k in range(3):
        save_png(noise_image(300 + k), domain_a / f"good{k}.png")
    bad = make_bad_files(domain_a / "broken")
    save_png(noise_image(400), tmp_path / "trainB" / "b.png")
    reports: list[tuple[str, str]] = []
    loader = UnpairedLoader(
        domain_a,
        tmp_path / "trainB",
        img_size=8,
        batch_size=2,
        seed=1,
        num_workers=num_workers,
        margin=2,
        on_bad_image=lambda name, reason: reports.append((name, reason)),
    )
    batches = take(loader, 14)  # 4 epochs of 7 files
    loader.close()
    assert all(a.shape == (2, 3, 8, 8) for a, _ in batches)
    assert sorted(name for name, _ in reports) == sorted(str(p) for p in bad.values())
    assert all(reason for _, reason in reports)
    assert set(loader.bad_images) == {str(p) for p in bad.values()}


def test_bad_files_default_report_is_a_warning(tmp_path: Path) -> None:
    save_png(noise_image(0), tmp_path / "A" / "good.png")
    (tmp_path / "A" / "zz_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    loader = UnpairedLoader(tmp_path / "A", [noise_image(1)], img_size=4, margin=0)
    with pytest.warns(BadImageWarning, match="zz_broken.jpg"):
        take(loader, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        take(loader, 4)  # already reported: silent from now on


def test_resume_with_bad_files_is_bit_identical(tmp_path: Path) -> None:
    for k in range(4):
        save_png(noise_image(500 + k), tmp_path / "A" / f"{k}.png")
    make_bad_files(tmp_path / "A")
    source_b = [noise_image(600 + k) for k in range(3)]

    def fresh(num_workers: int) -> UnpairedLoader:
        return UnpairedLoader(
            tmp_path / "A",
            source_b,
            img_size=8,
            batch_size=3,
            seed=2,
            num_workers=num_workers,
            margin=3,
            on_bad_image=lambda *_: None,
        )

    reference = take(fresh(0), 6)
    first = fresh(2)
    take(first, 3)
    state = first.state_dict()
    first.close()
    resumed = fresh(2)
    resumed.load_state_dict(state)
    assert_same_batches(take(resumed, 3), reference[3:])
    resumed.close()


def test_domain_without_any_decodable_image_is_a_user_error(tmp_path: Path) -> None:
    make_bad_files(tmp_path / "A")
    loader = UnpairedLoader(tmp_path / "A", [noise_image(0)], img_size=4, on_bad_image=lambda *_: None)
    with pytest.raises(UserError, match="none of its images"):
        next(loader)


def test_state_dict_validation_and_mismatch_warnings() -> None:
    loader = make_loader()
    with pytest.raises(UserError, match="domain A"):
        loader.load_state_dict({"B": {"epoch": 0, "index": 0}})
    with pytest.raises(UserError):
        loader.load_state_dict({"A": {"epoch": -1, "index": 0}, "B": {"epoch": 0, "index": 0}})
    with pytest.warns(UserWarning, match="domain A has 5 images but had 6"):
        loader.load_state_dict({"A": {"epoch": 1, "index": 5, "size": 6}, "B": {"epoch": 0, "index": 0}})
    assert loader.state_dict()["A"]["epoch"] == 2 and loader.state_dict()["A"]["index"] == 0
    with pytest.warns(UserWarning, match="seed"):
        loader.load_state_dict({**loader.state_dict(), "seed": 99})
    # The minimal format (no size, no seed) is accepted silently.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loader.load_state_dict({"A": {"epoch": 0, "index": 1}, "B": {"epoch": 0, "index": 2}})


def test_loader_argument_validation() -> None:
    images = [noise_image(0)]
    for bad in ({"batch_size": 0}, {"num_workers": -1}, {"img_size": 0}, {"margin": -1}):
        with pytest.raises(UserError, match=next(iter(bad))):
            UnpairedLoader(images, images, **{"img_size": 4, **bad})


def test_ranks_deal_out_the_stream_of_one_process() -> None:
    """2 ranks x batch 1 see what one process x batch 2 sees, batch for batch, and share its position."""
    a, b = [noise_image(k) for k in range(5)], [noise_image(50 + k) for k in range(3)]
    whole = UnpairedLoader(a, b, img_size=8, batch_size=2, seed=3)
    ranks = [UnpairedLoader(a, b, img_size=8, batch_size=1, seed=3, rank=r, world_size=2) for r in range(2)]
    for _ in range(5):  # across epoch boundaries of both domains
        real_a, real_b = next(whole)
        parts = [next(loader) for loader in ranks]
        assert torch.equal(real_a, torch.cat([p[0] for p in parts])) and torch.equal(
            real_b, torch.cat([p[1] for p in parts])
        )
    positions = [{k: v for k, v in loader.state_dict().items() if k in "AB"} for loader in (whole, *ranks)]
    assert positions[0] == positions[1] == positions[2]
    resumed = UnpairedLoader(a, b, img_size=8, batch_size=1, seed=3, rank=1, world_size=2)
    resumed.load_state_dict(ranks[1].state_dict())
    assert torch.equal(next(resumed)[0], next(ranks[1])[0])
    with pytest.warns(UserWarning, match=r"resuming on 1 process, saved on 2: the global batch changes from 2 to 1"):
        UnpairedLoader(a, b, img_size=8, batch_size=1, seed=3).load_state_dict(ranks[0].state_dict())
    said = []
    UnpairedLoader(a, b, img_size=8, batch_size=2, seed=3).load_state_dict(
        whole.state_dict() | {"batch_size": 1}, said.append
    )
    assert said == [
        "the data was dealt out in batches of 1 and now of 2: each process sees other images than an "
        "uninterrupted run would (the stream itself goes on where it stopped)"
    ]
    with pytest.raises(UserError, match="rank must be in"):
        UnpairedLoader(a, b, img_size=8, rank=2, world_size=2)


def test_loader_from_config() -> None:
    config = Config()
    config.model.img_size = 8
    config.data.batch_size = 2
    config.data.num_workers = 0
    config.data.resize_margin = 2
    loader = UnpairedLoader.from_config(config, [noise_image(0)], [noise_image(1)])
    real_a, _ = next(loader)
    assert real_a.shape == (2, 3, 8, 8)
    assert loader.seed == config.train.seed


# ----------------------------------------------------------------------------------------------
# test sets
# ----------------------------------------------------------------------------------------------


def test_inference_loader_is_ordered(tmp_path: Path) -> None:
    for name in ("b.png", "a.jpg", "sub/c.PNG"):
        save_png(noise_image(len(name), (9, 13)), tmp_path / name)
    (batch,) = list(sized_batches(tmp_path, img_size=6, batch_size=8, keep_images=True))
    assert len(batch) == 3 and batch.indices == [0, 1, 2]
    assert batch.names == [str(tmp_path / n) for n in ("a.jpg", "b.png", "sub/c.PNG")]
    assert batch.stacked().shape == (3, 3, 6, 6)
    assert torch.equal(batch.tensors[1], eval_transform(load_rgb(tmp_path / "b.png"), 6))
    # the decoded originals, unresized
    assert [np.asarray(img).shape for img in batch.images] == [np.asarray(load_rgb(name)).shape for name in batch.names]
    assert batch.images[0].size != (6, 6)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_inference_loader_skips_and_reports_bad_files(tmp_path: Path, num_workers: int) -> None:
    for k in range(3):
        save_png(noise_image(k), tmp_path / f"{k}.png")
    bad = make_bad_files(tmp_path / "zz")
    reports: list[str] = []
    batches = list(
        sized_batches(
            tmp_path,
            img_size=4,
            batch_size=2,
            num_workers=num_workers,
            on_bad_image=lambda name, reason: reports.append(name),
        )
    )
    names = [name for batch in batches for name in batch.names]
    assert names == [str(tmp_path / f"{k}.png") for k in range(3)]
    assert all(b.stacked().shape[1:] == (3, 4, 4) and b.stacked().shape[0] == len(b.names) for b in batches if len(b))
    assert sorted(reports) == sorted(str(p) for p in bad.values())
    # every position is accounted for, translated or skipped
    assert sorted(i for b in batches for i in [*b.indices, *(s[0] for s in b.skipped)]) == list(range(3 + len(bad)))
    with pytest.raises(BadImageError):
        next(sized_batches(list(bad.values()), img_size=4, strict=True))


def test_loader_workers_default_to_enough_for_a_gpu(monkeypatch) -> None:
    """Unset `data.num_workers`: two on the CPU; on a GPU up to six (60 it/s needs ~120 crops a second,
    50-120 per process, fewer on shared cores: docs/benchmarks.md), leaving two cores to training."""
    from ugatit.data import unpaired

    assert Config().data.num_workers is None
    assert unpaired.default_workers(gpu=False) == 2
    for cores, expected in ((2, 2), (6, 4), (16, 6), (None, 2)):
        monkeypatch.setattr(unpaired.os, "cpu_count", lambda cores=cores: cores)
        assert unpaired.default_workers(gpu=True) == expected
    loader = UnpairedLoader.from_config(Config(), [noise_image(0)], [noise_image(1)], pin_memory=False)
    assert loader.num_workers == 2
    loader.close()


def test_every_sixteen_bit_value_maps_to_the_nearest_eight_bit_one(tmp_path: Path) -> None:
    """The integer conversion (no float64 copy of a large image) equals rint(v * 255 / 65535) for all
    65536 values."""
    every = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    path = save_png(Image.fromarray(every), tmp_path / "every.png")
    got = np.asarray(load_rgb(path))[:, :, 0].astype(np.int64)
    assert np.array_equal(got, np.rint(every / 257.0).astype(np.int64))


def test_the_decode_budget_counts_bit_depth_and_reduces_jpegs(tmp_path: Path, monkeypatch) -> None:
    from ugatit.data import images

    monkeypatch.setattr(images, "MAX_DECODE_PIXELS", 1000)  # a small budget, small images
    save_png(Image.new("L", (40, 25)), tmp_path / "gray8.png")  # 1000 pixels: fits
    save_png(Image.fromarray(np.zeros((25, 40), np.uint16)), tmp_path / "gray16.png")  # counts 2000
    Image.new("RGB", (64, 48)).save(tmp_path / "photo.jpg")  # 3072: decoded at 1/2, 768
    Image.new("RGB", (400, 300)).save(tmp_path / "large.jpg")  # 120000: over even at 1/8 (1875)
    assert load_rgb(tmp_path / "gray8.png").size == (40, 25)
    with pytest.raises(BadImageError, match=r"40x25 pixels of 16 bits a sample \(counted twice\) are 0 million"):
        load_rgb(tmp_path / "gray16.png")
    assert load_rgb(tmp_path / "photo.jpg").size == (32, 24)
    with pytest.raises(BadImageError, match="even reduced to 1/8 while decoding"):
        load_rgb(tmp_path / "large.jpg")
