"""keras_cool.utils: small numpy helpers shared by callbacks and examples."""

from keras_cool.utils.image_grid import plot_points
from keras_cool.utils.image_grid import save_png
from keras_cool.utils.image_grid import tile_images

__all__ = ["plot_points", "save_png", "tile_images"]
