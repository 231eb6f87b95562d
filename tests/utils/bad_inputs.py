"""Bad inputs of keras_cool.utils (see tests/bad_input_rows.py)."""

import numpy as np

from keras_cool import utils as ku
from tests.bad_input_rows import NAN
from tests.bad_input_rows import C
from tests.bad_input_rows import Row

ROWS = [
    Row(
        "ti-shape",
        "tile_images",
        C,
        lambda: ku.tile_images(np.zeros((2, 3))),
        ValueError,
        "tile_images",
    ),
    Row(
        "ti-channels",
        "tile_images",
        C,
        lambda: ku.tile_images(np.zeros((2, 3, 3, 2))),
        ValueError,
        "tile_images",
    ),
    Row(
        "ti-range-rev",
        "tile_images",
        C,
        lambda: ku.tile_images(np.zeros((1, 2, 2)), value_range=(1, 0)),
        ValueError,
        "value_range",
    ),
    Row(
        "ti-range-nan",
        "tile_images",
        C,
        lambda: ku.tile_images(np.zeros((1, 2, 2)), value_range=(0, NAN)),
        ValueError,
        "value_range",
    ),
    Row(
        "ti-nan",
        "tile_images",
        C,
        lambda: ku.tile_images(np.full((1, 2, 2), NAN)),
        ValueError,
        "non-finite",
    ),
    Row(
        "ti-rows",
        "tile_images",
        C,
        lambda: ku.tile_images(np.zeros((1, 2, 2)), rows=1.5),
        ValueError,
        "rows",
    ),
    Row(
        "pp-shape",
        "plot_points",
        C,
        lambda: ku.plot_points(np.zeros((3, 3))),
        ValueError,
        "points",
    ),
    Row(
        "pp-limits",
        "plot_points",
        C,
        lambda: ku.plot_points(np.zeros((3, 2)), limits=(1, 1)),
        ValueError,
        "limits",
    ),
    Row(
        "pp-limits-nan",
        "plot_points",
        C,
        lambda: ku.plot_points(np.zeros((3, 2)), limits=(0, NAN)),
        ValueError,
        "limits",
    ),
    Row(
        "pp-size",
        "plot_points",
        C,
        lambda: ku.plot_points(np.zeros((3, 2)), size=2.5),
        TypeError,
        "size",
    ),
    Row(
        "png-dtype",
        "save_png",
        C,
        lambda: ku.save_png(np.zeros((2, 2)), "x.png"),
        ValueError,
        "uint8",
    ),
]
