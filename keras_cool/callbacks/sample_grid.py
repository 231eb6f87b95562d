"""Write a tiled PNG of a generator's outputs on fixed inputs during fit."""

import contextlib
import os

import keras
import numpy as np

from keras_cool._backend import process_shard
from keras_cool.callbacks._checks import check_count
from keras_cool.callbacks._checks import check_weights_context
from keras_cool.callbacks._checks import check_writable
from keras_cool.callbacks._optimizer import StepClock
from keras_cool.callbacks._optimizer import optimizer_iterations
from keras_cool.utils.image_grid import plot_points
from keras_cool.utils.image_grid import save_png
from keras_cool.utils.image_grid import tile_images

__all__ = ["SampleGrid"]


class SampleGrid(keras.callbacks.Callback):
    """Every N epochs or steps, saves one PNG of generated samples.

    The generator runs on the same fixed `inputs` (e.g. noise drawn once
    with a seed) every time, so successive frames are comparable. In
    `"images"` mode the outputs are tiled into one grid
    (`keras_cool.utils.tile_images`), grayscale or RGB, with values in
    `value_range` such as (0, 1) or (-1, 1). In `"points"` mode the outputs
    are 2-D points drawn as a scatter plot
    (`keras_cool.utils.plot_points`), for toy GANs on 2-D mixtures. PNGs are
    written atomically by `keras_cool.utils.save_png`, which needs Pillow;
    `on_train_begin` checks that it is installed.

    A generator that is a sub-model of the model being trained shows its
    current weights (the model state is synced first on JAX). Step frames
    are taken before the step after every n completed steps, plus one at
    the end of training.

    Args:
        generator: a Keras layer or model (called with `training=False`), a
            Python callable `generator(inputs) -> array`, or `None` for the
            model being trained.
        inputs: the fixed inputs (numpy array, or list of arrays) passed to
            the generator.
        filepath: PNG path pattern, formatted with `epoch` (epochs completed
            for epoch frames, the current 1-based epoch for step frames) and
            `step` (optimizer steps completed), e.g.
            `"samples/epoch_{epoch:03d}.png"` or
            `"samples/step_{step:06d}.png"`. Defaults to
            `"samples/epoch_{epoch:03d}.png"`.
        every_n_epochs: write a frame after every n-th epoch; `None`: never.
            Defaults to `1`.
        every_n_steps: write a frame after every n-th optimizer step;
            `None`: never. Defaults to `None`.
        mode: `"images"` or `"points"`. Defaults to `"images"`.
        value_range: (low, high) of the generated pixel values, images
            only; `None`: uint8 outputs are pixels (0..255), others are in
            (0, 1). Checked at construction (finite, low < high). Defaults
            to `None`.
        image_shape: optional (h, w) or (h, w, c) to reshape flat outputs
            (n, h*w*c) into images. Defaults to `None`.
        rows: number of grid rows (images); `None`: near-square. Defaults
            to `None`.
        size: width and height in pixels of the scatter plot (points).
            Defaults to `256`.
        limits: (low, high) axis limits of the scatter plot; `None`: from
            the data (fix them to make frames comparable). Defaults to
            `None`.
        reference: optional (m, 2) array drawn under the points, e.g. the
            true mode centres. Defaults to `None`.
        weights_context: optional zero-argument callable returning a
            context manager during which the model holds other weights
            (e.g. an EMA callback's `swapped_weights`); frames are generated
            inside it. Defaults to `None`.
        verbose: 1 prints each written path. Defaults to `0`.

    Example:

    ```python
    generator = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(64, activation="tanh")]
    )
    model = keras.Sequential([generator, keras.layers.Dense(1)])
    model.compile("adam", "mse")
    noise = np.random.default_rng(0).normal(size=(16, 8))
    grid = keras_cool.callbacks.SampleGrid(
        generator,
        noise,
        "samples/epoch_{epoch:03d}.png",
        value_range=(-1, 1),
        image_shape=(8, 8),
    )
    model.fit(noise, np.zeros((16, 1)), epochs=2, callbacks=[grid], verbose=0)
    # samples/epoch_001.png, samples/epoch_002.png: 4x4 grids of 8x8 images
    ```

    Reference:
        keras-contrib `examples/improved_wgan.py` (`tile_images`,
        `generate_images`) and keras-io `wgan_gp.py` (`GANMonitor`).
    """

    def __init__(
        self,
        generator,
        inputs,
        filepath="samples/epoch_{epoch:03d}.png",
        every_n_epochs=1,
        every_n_steps=None,
        mode="images",
        value_range=None,
        image_shape=None,
        rows=None,
        size=256,
        limits=None,
        reference=None,
        weights_context=None,
        verbose=0,
    ):
        super().__init__()
        if generator is not None and not callable(generator):
            raise TypeError(
                "generator must be a Keras model or layer, a callable "
                f"`generator(inputs) -> array`, or None, got {generator!r}."
            )
        if mode not in ("images", "points"):
            raise ValueError(
                f'mode must be "images" or "points", got {mode!r}.'
            )
        check_count("every_n_epochs", every_n_epochs, optional=True)
        check_count("every_n_steps", every_n_steps, optional=True)
        if every_n_epochs is None and every_n_steps is None:
            raise ValueError(
                "Give every_n_epochs or every_n_steps (or both); with "
                "neither, SampleGrid would never write a frame."
            )
        try:
            os.fspath(filepath).format(epoch=1, step=1)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                "filepath may only use the fields {epoch} and {step}, got "
                f"{filepath!r} ({error!r})."
            ) from error
        check_weights_context(weights_context)
        if inputs is None:
            raise ValueError(
                "inputs must be the fixed generator inputs (an array or a "
                "list of arrays), got None."
            )
        # The public drawing functions check value_range, limits, size and
        # rows now, not at the first frame.
        if mode == "images":
            tile_images(np.zeros((1, 1, 1)), rows=rows, value_range=value_range)
        else:
            plot_points(np.zeros((1, 2)), size=size, limits=limits)
        self.generator = generator
        self.inputs = inputs
        self.filepath = os.fspath(filepath)
        self.every_n_epochs = every_n_epochs
        self.every_n_steps = every_n_steps
        self.mode = mode
        self.value_range = None if value_range is None else tuple(value_range)
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.rows = rows
        self.size = size
        self.limits = None if limits is None else tuple(limits)
        self.reference = reference
        self.weights_context = weights_context
        self.verbose = verbose
        self.paths = []
        self._last_step = None
        self._clock = StepClock()

    def generate(self):
        """Runs the generator on the fixed inputs; returns a numpy array."""
        model = self.model  # on JAX: syncs the trained weights first
        generator = model if self.generator is None else self.generator
        context = self.weights_context or contextlib.nullcontext
        with context():
            if isinstance(generator, keras.layers.Layer):
                outputs = generator(self.inputs, training=False)
            else:
                outputs = generator(self.inputs)
        if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
            outputs = outputs[0]
        if isinstance(outputs, (list, tuple, dict)):
            raise ValueError(
                "SampleGrid expects the generator to return one array, got "
                f"a {type(outputs).__name__}; wrap it in a callable that "
                "returns the samples to draw."
            )
        return np.asarray(keras.ops.convert_to_numpy(outputs))

    def render(self, outputs):
        """Turns generator outputs into a uint8 image."""
        if self.mode == "points":
            return plot_points(
                outputs,
                size=self.size,
                limits=self.limits,
                reference=self.reference,
            )
        if self.image_shape is not None:
            outputs = outputs.reshape((len(outputs),) + self.image_shape)
        return tile_images(
            outputs, rows=self.rows, value_range=self.value_range
        )

    def _write(self, epoch, step):
        path = self.filepath.format(epoch=epoch, step=step)
        # Every process generates (predict is a collective in a
        # multi-process job); process 0 alone writes the file.
        image = self.render(self.generate())
        if process_shard()[0] == 0:
            save_png(image, path)
        self.paths.append(path)
        self._last_step = step
        if self.verbose:
            print(f"\nSampleGrid: wrote {path}")

    def on_train_begin(self, logs=None):
        self._epoch = 0
        self._clock.on_train_begin(self.model)
        check_writable("filepath", self.filepath.format(epoch=0, step=0))
        if process_shard()[0] == 0:
            _check_pillow()
        # A dry run (nothing written): an output that cannot be drawn is
        # reported now, not after the first epoch.
        try:
            self.render(self.generate())
        except (ValueError, TypeError) as error:
            raise type(error)(
                f"SampleGrid cannot draw the generator's output on `inputs` "
                f"(mode={self.mode!r}, image_shape={self.image_shape}): "
                f"{error}"
            ) from error

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self.every_n_steps:
            self._clock.on_epoch_begin(self.model)

    def on_train_batch_begin(self, batch, logs=None):
        if not self.every_n_steps:
            return
        step = self._clock.step(batch)
        if step and step % self.every_n_steps == 0 and step != self._last_step:
            self._write(self._epoch + 1, step)

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:
            self._write(epoch + 1, optimizer_iterations(self.model) or 0)

    def on_train_end(self, logs=None):
        if not self.every_n_steps:
            return
        step = optimizer_iterations(self.model) or 0
        if step and step % self.every_n_steps == 0 and step != self._last_step:
            self._write(self._epoch + 1, step)


def _check_pillow():
    """Raises at `on_train_begin`, not after the first epoch, when Pillow
    (needed to write the PNGs) is missing."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "SampleGrid writes PNG files, which needs Pillow: "
            "pip install Pillow"
        ) from error
