"""Figures shared by the examples: titled, with labelled axes or a legend.

Not an example itself (the leading underscore keeps it out of the example
runs). Built on matplotlib's object-oriented API (`Figure`, rendered by
Agg: no display, no global pyplot state). Every PNG is written atomically:
to a temporary file in the same folder, then renamed, so a crash never
leaves a truncated file behind.
"""

import math
import os
import threading

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

import keras_cool

DPI = 100


def save_figure(figure, path):
    """Writes `figure` to `path` as a PNG, atomically; returns `path`."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    temporary = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(temporary, "wb") as file:
            figure.savefig(
                file,
                format="png",
                dpi=DPI,
                bbox_inches="tight",
                pad_inches=0.1,
                pil_kwargs={"optimize": True},
            )
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def image_grid(
    images,
    path,
    title,
    rows=None,
    xlabel=None,
    ylabel=None,
    row_labels=None,
    col_labels=None,
    width=6.0,
):
    """Tiles `images` (n, h, w[, 1]) in [0, 1] into a titled grid PNG.

    `row_labels` / `col_labels` name the rows / columns of tiles; the grid
    is drawn `width` inches (`width * DPI` pixels) wide.
    """
    images = np.asarray(images)
    grid = keras_cool.utils.tile_images(images, rows=rows, value_range=(0, 1))
    # Grey lines between the tiles (tile_images pads with black).
    tiles = keras_cool.utils.tile_images(np.ones_like(images), rows=rows)
    grid[tiles == 0] = 128
    n, h, w = images.shape[:3]
    rows = rows or max(1, math.isqrt(n))
    cols = math.ceil(n / rows)
    height = width * grid.shape[0] / grid.shape[1] + 0.9
    figure = Figure(figsize=(width + 0.8, height), layout="constrained")
    axes = figure.add_subplot()
    axes.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")

    def centres(count, size):  # of the tiles, in grid pixels
        return [i * (size + 1) + (size - 1) / 2 for i in range(count)]

    if row_labels is not None:
        axes.set_yticks(centres(rows, h), row_labels[:rows], fontsize=8)
    else:
        axes.set_yticks([])
    if col_labels is not None:
        axes.set_xticks(centres(cols, w), col_labels[:cols], fontsize=8)
    else:
        axes.set_xticks([])
    axes.tick_params(length=0)
    if xlabel:
        axes.set_xlabel(xlabel)
    if ylabel:
        axes.set_ylabel(ylabel)
    axes.set_title(title)
    return save_figure(figure, path)


def scatter(
    points,
    reference,
    path,
    title,
    limit,
    label="generated",
    reference_label="real",
):
    """2-D `points` (blue) over `reference` points (red), with a legend."""
    figure = Figure(figsize=(5.5, 5.5), layout="constrained")
    axes = figure.add_subplot()
    style = dict(s=3, alpha=0.6, linewidths=0)
    axes.scatter(
        *np.asarray(reference).T,
        color="tab:red",
        label=f"{reference_label} ({len(reference):,} points)",
        **style,
    )
    axes.scatter(
        *np.asarray(points).T,
        color="tab:blue",
        label=f"{label} ({len(points):,} points)",
        **style,
    )
    axes.set_xlim(-limit, limit)
    axes.set_ylim(-limit, limit)
    axes.set_aspect("equal")
    axes.set_xlabel("x₁")
    axes.set_ylabel("x₂")
    axes.legend(loc="upper right", markerscale=4, framealpha=0.9)
    axes.set_title(title)
    return save_figure(figure, path)


def attention_maps(maps, tokens, path, title, subtitles, cols=4, boxes=None):
    """Attention maps (query down, key across) with tokens on both axes.

    `maps` is a list of (length, length) arrays, `tokens` one list of
    token strings for all maps or one per map, `subtitles` one per map,
    `boxes` an optional (query, key) cell per map to outline in red. All
    maps share one colour scale, from 0 to the largest value.
    """
    count = len(maps)
    cols = min(cols, count)
    rows = math.ceil(count / cols)
    per_map = isinstance(tokens[0], (list, tuple))
    length = max(len(m) for m in maps)
    side = 1.2 + 0.2 * length
    figure = Figure(
        figsize=(cols * side + 1.2, rows * (side + 0.3) + 0.6),
        layout="constrained",
    )
    grid = figure.subplots(rows, cols, squeeze=False)
    top = max(float(np.max(m)) for m in maps)
    for i, axes in enumerate(grid.flat):
        if i >= count:
            axes.set_axis_off()
            continue
        names = tokens[i] if per_map else tokens
        image = axes.imshow(
            maps[i], cmap="viridis", vmin=0.0, vmax=top, interpolation="nearest"
        )
        ticks = range(len(names))
        axes.set_xticks(ticks, names, rotation=90, fontsize=7)
        axes.set_yticks(ticks, names, fontsize=7)
        axes.tick_params(length=0)
        axes.set_xlabel("key", fontsize=8)
        axes.set_ylabel("query", fontsize=8)
        axes.set_title(subtitles[i], fontsize=9)
        if boxes is not None:
            query, key = boxes[i]
            axes.add_patch(
                Rectangle(
                    (key - 0.5, query - 0.5),
                    1,
                    1,
                    fill=False,
                    edgecolor="red",
                    linewidth=2,
                )
            )
    figure.colorbar(image, ax=grid, label="attention probability", shrink=0.8)
    figure.suptitle(title)
    return save_figure(figure, path)


def curves(series, path, title, xlabel, ylabel, levels=None):
    """Line plot of `series`, a dict label -> (x values, y values), with
    optional horizontal dashed lines `levels`, a dict label -> y."""
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axes = figure.add_subplot()
    for label, (x, y) in series.items():
        axes.plot(x, y, marker="o", markersize=3, label=label)
    for i, (label, y) in enumerate((levels or {}).items()):
        axes.axhline(
            y, linestyle="--", color=f"C{len(series) + i}", label=label
        )
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend()
    axes.set_title(title)
    return save_figure(figure, path)
