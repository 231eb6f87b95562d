"""Tile images into one grid, draw 2-D point clouds, write PNGs atomically.

numpy only; Pillow is imported lazily, when a PNG is written.
"""

import numpy as np

from keras_cool._io import atomic_write

__all__ = ["plot_points", "save_png", "tile_images"]


def _check_limits(name, limits):
    """`(low, high)` as floats: both finite and low < high."""
    try:
        low, high = (float(v) for v in limits)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a pair (low, high) of numbers, got {limits!r}."
        ) from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(
            f"{name} must be (low, high) with finite low < high, got "
            f"{limits!r}."
        )
    return low, high


def _to_uint8(images, value_range):
    if value_range is None:
        if images.dtype == np.uint8:
            return images  # already pixels
        value_range = (0.0, 1.0)
    low, high = _check_limits("value_range", value_range)
    values = np.asarray(images, "float64")
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"images contain {int(bad.sum())} non-finite values (NaN or "
            "inf) out of "
            f"{values.size}: they cannot be drawn. Did the generator "
            "diverge?"
        )
    scaled = (np.asarray(images, "float64") - low) / (high - low)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype("uint8")


def tile_images(images, rows=None, value_range=None, padding=1):
    """Tile a batch of images into one uint8 image.

    Args:
        images: array of shape (n, h, w), (n, h, w, 1) or (n, h, w, 3).
        rows: number of rows; `None`: a near-square grid. Defaults to
            `None`.
        value_range: (low, high) of the input values, e.g. (0, 1) or
            (-1, 1); values outside are clipped. `None`: uint8 images are
            pixels (0..255) and are tiled unchanged, others are taken in
            (0, 1). NaN or inf values raise a `ValueError`. Defaults to
            `None`.
        padding: pixels of black between tiles. Defaults to `1`.

    Returns:
        uint8 array (H, W) for grayscale or (H, W, 3) for RGB.

    Example:

    ```python
    grid = keras_cool.utils.tile_images(np.random.rand(16, 8, 8))
    grid.shape  # (35, 35): 4 x 4 tiles of 8 x 8, 1 pixel apart
    ```
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (
        images.ndim == 4 and images.shape[-1] != 3
    ):
        raise ValueError(
            "tile_images expects (n, h, w), (n, h, w, 1) or (n, h, w, 3) "
            f"images, got shape {images.shape}."
        )
    n, h, w = images.shape[:3]
    if rows is not None and (
        isinstance(rows, bool)
        or not isinstance(rows, (int, np.integer))
        or rows < 1
    ):
        raise ValueError(f"rows must be an int >= 1 or None, got {rows!r}.")
    rows = rows or int(np.floor(np.sqrt(n))) or 1
    cols = int(np.ceil(n / rows))
    pixels = _to_uint8(images, value_range)
    shape = (rows * (h + padding) - padding, cols * (w + padding) - padding)
    grid = np.zeros(shape + images.shape[3:], "uint8")
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = r * (h + padding), c * (w + padding)
        grid[top : top + h, left : left + w] = pixels[i]
    return grid


def plot_points(
    points, size=256, limits=None, reference=None, colors=None, radius=1
):
    """Draw a 2-D scatter plot into an RGB uint8 image (no matplotlib).

    Args:
        points: array (n, 2), drawn in blue (or per-point `colors`).
        size: width and height in pixels. Defaults to `256`.
        limits: (low, high) for both axes; `None`: from the data. Defaults
            to `None`.
        reference: optional array (m, 2) drawn in red underneath (e.g. the
            true mode centres). Defaults to `None`.
        colors: optional uint8 array (n, 3); `None`: blue. Defaults to
            `None`.
        radius: point radius in pixels. Defaults to `1`.

    Returns:
        uint8 array (size, size, 3), white background.

    Example:

    ```python
    image = keras_cool.utils.plot_points(np.random.normal(size=(500, 2)))
    image.shape  # (256, 256, 3)
    ```
    """
    points = np.asarray(points, "float64")
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (n, 2), got {points.shape}")
    layers = [points] if reference is None else [reference, points]
    if limits is None:
        both = np.concatenate([np.asarray(p, "float64") for p in layers])
        finite = both[np.isfinite(both).all(axis=1)]
        low, high = (finite.min(), finite.max()) if len(finite) else (-1, 1)
        margin = 0.05 * (high - low or 1.0)
        limits = (low - margin, high + margin)
    low, high = _check_limits("limits", limits)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"size must be an int >= 2, got {size!r}.")
    if size < 2:
        raise ValueError(f"size must be an int >= 2, got {size!r}.")
    image = np.full((size, size, 3), 255, "uint8")

    def draw(xy, rgb):
        xy = np.asarray(xy, "float64")
        keep = np.isfinite(xy).all(axis=1)
        xy, rgb = xy[keep], rgb[keep]
        px = np.round((xy - low) / (high - low) * (size - 1)).astype(int)
        px[:, 1] = size - 1 - px[:, 1]
        for dx in range(-radius, radius + 1):
            for dy in range(-radius, radius + 1):
                x, y = px[:, 0] + dx, px[:, 1] + dy
                ok = (x >= 0) & (x < size) & (y >= 0) & (y < size)
                image[y[ok], x[ok]] = rgb[ok]

    if reference is not None:
        ref = np.asarray(reference)
        draw(ref, np.tile(np.array([[220, 30, 30]], "uint8"), (len(ref), 1)))
    if colors is None:
        colors = np.tile(np.array([[30, 60, 200]], "uint8"), (len(points), 1))
    draw(points, np.asarray(colors, "uint8"))
    return image


def save_png(image, path):
    """Write a uint8 image (H, W) or (H, W, 3) to `path` atomically.

    The PNG is written to a temporary file in the same folder, then renamed,
    so a crash never leaves a truncated file behind.

    Args:
        image: uint8 array (H, W) or (H, W, 3).
        path: destination file name.

    Returns:
        `path`.

    Example:

    ```python
    grid = keras_cool.utils.tile_images(np.random.rand(16, 8, 8))
    keras_cool.utils.save_png(grid, "samples.png")
    ```
    """
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(
            "Writing PNG files needs Pillow: pip install Pillow"
        ) from error
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(
            f"save_png expects uint8 pixels, got {image.dtype}; use "
            "keras_cool.utils.tile_images to convert."
        )
    image = Image.fromarray(image)
    atomic_write(path, lambda f: image.save(f, format="PNG"))
    return path
