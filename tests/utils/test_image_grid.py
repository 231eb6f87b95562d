import numpy as np
import pytest
from PIL import Image

from keras_cool.utils import plot_points
from keras_cool.utils import save_png
from keras_cool.utils import tile_images


def test_tiles_grayscale_in_order():
    images = np.arange(6 * 2 * 3).reshape(6, 2, 3) / 35.0
    grid = tile_images(images, rows=2, padding=1)
    assert grid.shape == (2 * 3 - 1, 3 * 4 - 1)
    expected = np.round(images[4] * 255).astype("uint8")  # row 1, col 1
    np.testing.assert_array_equal(grid[3:5, 4:7], expected)
    assert grid[2].max() == 0  # padding row


def test_tiles_rgb_and_minus_one_to_one():
    images = np.full((4, 2, 2, 3), -1.0)
    images[1] = 1.0
    grid = tile_images(images, value_range=(-1, 1), padding=0)
    assert grid.shape == (4, 4, 3)
    assert grid[0, 0, 0] == 0 and grid[0, 2, 0] == 255


def test_bad_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="expects"):
        tile_images(np.zeros((2, 3, 3, 2)))


def test_save_png_round_trip_and_atomic(tmp_path):
    grid = tile_images(np.random.default_rng(0).random((9, 4, 4)))
    path = save_png(grid, str(tmp_path / "sub" / "g.png"))
    np.testing.assert_array_equal(np.asarray(Image.open(path)), grid)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["g.png"]
    with pytest.raises(ValueError, match="uint8"):
        save_png(grid.astype("float32"), str(tmp_path / "x.png"))


def test_plot_points_marks_points():
    image = plot_points(
        np.array([[0.0, 0.0], [1.0, 1.0]]), size=32, limits=(0, 1), radius=0
    )
    assert tuple(image[31, 0]) == (30, 60, 200)  # (0, 0) is bottom left
    assert tuple(image[0, 31]) == (30, 60, 200)
    assert tuple(image[16, 16]) == (255, 255, 255)


def test_uint8_images_are_pixels_and_tile_unchanged():
    images = np.arange(4 * 2 * 2, dtype="uint8").reshape(4, 2, 2) * 16
    grid = tile_images(images, rows=2, padding=0)
    assert grid.dtype == np.uint8
    np.testing.assert_array_equal(grid[:2, :2], images[0])
    np.testing.assert_array_equal(grid[2:, 2:], images[3])
    assert len(np.unique(grid)) == 16  # not only 0 and 255


def test_float_images_default_to_unit_range():
    grid = tile_images(np.full((1, 2, 2), 0.5), padding=0)
    assert (grid == 128).all()
