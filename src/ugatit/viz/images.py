"""Pictures from model outputs: the jet colormap, attention heatmaps, overlays and image grids.

Only numpy and Pillow; torch tensors are accepted by duck typing, so this module never imports torch
(turn model outputs into uint8 images with `ugatit.data.tensor_to_uint8`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image


def to_numpy(array) -> np.ndarray:
    """A numpy array from a numpy array, a PIL image or a torch tensor (detached, moved to the CPU)."""
    if isinstance(array, Image.Image):
        return np.asarray(array)
    if hasattr(array, "detach"):  # torch.Tensor, without importing torch
        return array.detach().float().cpu().numpy()
    return np.asarray(array)


def _size_hw(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def jet(values: np.ndarray) -> np.ndarray:
    """The classic jet colormap: values in [0, 1] -> uint8 RGB (dark blue, cyan, yellow, dark red).

    Piecewise linear, as MATLAB's: each channel is a trapezoid 1.5 - |4x - c| clipped to [0, 1], with
    c = 3, 2, 1 for red, green, blue.
    """
    x = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)[..., None]
    centres = np.array([3.0, 2.0, 1.0])
    rgb = np.clip(1.5 - np.abs(4.0 * x - centres), 0.0, 1.0)
    return np.rint(rgb * 255.0).astype(np.uint8)


def heatmap_to_rgb(heatmap, size: int | tuple[int, int]) -> np.ndarray:
    """An attention map (H', W') or (1, H', W') -> uint8 H x W x 3 jet colours.

    The map is min-max normalised (a constant map becomes all zeros, i.e. dark blue), resized
    bilinearly to `size` (an int or (H, W)), then coloured.
    """
    array = to_numpy(heatmap).astype(np.float32)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"expected a heatmap of shape (H, W) or (1, H, W), got {array.shape}")
    array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(array.min()), float(array.max())
    # Normalise before resizing so bilinear interpolation cannot overshoot [0, 1].
    norm = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
    h, w = _size_hw(size)
    resized = np.asarray(Image.fromarray(norm).resize((w, h), Image.BILINEAR))
    return jet(resized)


def overlay(image_uint8: np.ndarray, heat_rgb: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a heatmap over an image: (1 - alpha) * image + alpha * heat, uint8 H x W x 3."""
    image = np.asarray(image_uint8)
    heat = np.asarray(heat_rgb)
    if image.shape != heat.shape:
        raise ValueError(f"image {image.shape} and heatmap {heat.shape} differ in shape")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    mixed = (1.0 - alpha) * image.astype(np.float32) + alpha * heat.astype(np.float32)
    return np.rint(mixed).clip(0, 255).astype(np.uint8)


def _as_rgb_uint8(cell) -> np.ndarray:
    array = to_numpy(cell)
    if array.dtype != np.uint8:
        raise ValueError(f"grid cells must be uint8 images, got dtype {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"grid cells must be H x W x 3 (or H x W), got shape {array.shape}")
    return array[..., :3]


def image_grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    pad: int = 2,
    background: tuple[int, int, int] = (255, 255, 255),
) -> Image.Image:
    """Paste uint8 H x W x 3 images into a grid, paper style (rows = samples, columns = stages).

    Every column is as wide as its widest cell and every row as tall as its tallest; cells sit at the
    top left of their slot. `pad` pixels of `background` separate the cells and frame the grid, so an
    R x C grid of h x w cells is (C*w + (C+1)*pad) x (R*h + (R+1)*pad). Short rows and None cells are
    left blank.
    """
    if not rows or not any(len(r) for r in rows):
        raise ValueError("image_grid needs at least one image")
    cells = [[None if c is None else _as_rgb_uint8(c) for c in row] for row in rows]
    n_cols = max(len(r) for r in cells)
    col_w = [0] * n_cols
    row_h = [0] * len(cells)
    for i, row in enumerate(cells):
        for j, cell in enumerate(row):
            if cell is not None:
                col_w[j] = max(col_w[j], cell.shape[1])
                row_h[i] = max(row_h[i], cell.shape[0])
    width = sum(col_w) + pad * (n_cols + 1)
    height = sum(row_h) + pad * (len(cells) + 1)
    canvas = np.empty((height, width, 3), dtype=np.uint8)
    canvas[:] = background
    y = pad
    for i, row in enumerate(cells):
        x = pad
        for j in range(n_cols):
            cell = row[j] if j < len(row) else None
            if cell is not None:
                canvas[y : y + cell.shape[0], x : x + cell.shape[1]] = cell
            x += col_w[j] + pad
        y += row_h[i] + pad
    return Image.fromarray(canvas)


def labelled_grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    labels: Sequence[str],
    min_cell: int = 128,
    pad: int = 2,
) -> Image.Image:
    """`image_grid` with a caption above each column, the cells scaled up (nearest neighbour, by a
    whole factor) until they are at least `min_cell` pixels tall: a 64-px sample is too small to
    judge and an unlabelled column leaves the reader guessing what it shows."""
    from PIL import ImageDraw, ImageFont

    cells = [[None if c is None else _as_rgb_uint8(c) for c in row] for row in rows]
    smallest = min((c.shape[0] for row in cells for c in row if c is not None), default=min_cell)
    factor = max(1, -(-min_cell // max(smallest, 1)))  # ceiling division
    if factor > 1:
        cells = [[None if c is None else c.repeat(factor, axis=0).repeat(factor, axis=1) for c in row] for row in cells]
    body = image_grid(cells, pad=pad)
    font = ImageFont.load_default(size=14)
    header = 22
    page = Image.new("RGB", (body.width, body.height + header), (255, 255, 255))
    page.paste(body, (0, header))
    draw = ImageDraw.Draw(page)
    widths = [
        max((row[j].shape[1] for row in cells if j < len(row) and row[j] is not None), default=0)
        for j in range(max(len(r) for r in cells))
    ]
    x = pad
    for label, width in zip(labels, widths):
        draw.text((x + width / 2, header / 2 + 1), label, fill=(40, 40, 40), font=font, anchor="mm")
        x += width + pad
    return page
