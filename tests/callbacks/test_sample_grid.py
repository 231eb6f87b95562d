import os
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from keras_cool.callbacks import SampleGrid
from keras_cool.utils import plot_points

NOISE = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")


def make_gan_like(image_shape, activation):
    """A generator (noise -> images) inside a model that trains it."""
    generator = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(
                int(np.prod(image_shape)), activation=activation
            ),
            keras.layers.Reshape(image_shape),
        ]
    )
    # Trained towards outputs of 0.9: every step moves the samples.
    model = keras.Sequential([generator, keras.layers.Flatten()])
    model.compile(optimizer=keras.optimizers.SGD(5.0), loss="mse")
    return generator, model


def fit(model, callbacks, steps=3, epochs=2):
    x = np.random.default_rng(1).normal(size=(2 * steps, 3)).astype("float32")
    model.fit(
        x,
        np.full((2 * steps, int(np.prod(model.output_shape[1:]))), 0.9),
        batch_size=2,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )


def read_png(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image)


def tiles(grid, n, h, w, rows, padding=1):
    cols = int(np.ceil(n / rows))
    out = []
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = r * (h + padding), c * (w + padding)
        out.append(grid[top : top + h, left : left + w])
    return np.stack(out)


def generated(generator, value_range):
    low, high = value_range
    out = keras.ops.convert_to_numpy(generator(NOISE, training=False))
    return np.round(np.clip((out - low) / (high - low), 0, 1) * 255)


def test_grayscale_frames_per_epoch_match_the_generator(tmp_path):
    generator, model = make_gan_like((4, 5, 1), "sigmoid")
    initial = generated(generator, (0, 1))
    pattern = str(tmp_path / "s" / "epoch_{epoch:03d}.png")
    grid = SampleGrid(generator, NOISE, pattern, rows=2)
    fit(model, [grid])
    assert grid.paths == [pattern.format(epoch=1), pattern.format(epoch=2)]
    last = read_png(grid.paths[-1])
    assert last.shape == (2 * 4 + 1, 3 * 5 + 2) and last.dtype == np.uint8
    expected = generated(generator, (0, 1))[..., 0]
    got = tiles(last, 6, 4, 5, rows=2).astype(int)
    assert np.abs(got - expected).max() <= 1
    # Training changed the generator, and frames show it (no stale state).
    assert np.abs(expected - initial[..., 0]).max() > 5
    first = tiles(read_png(grid.paths[0]), 6, 4, 5, rows=2).astype(int)
    assert np.abs(first - got).max() > 1


def test_rgb_minus_one_to_one_every_n_steps(tmp_path):
    generator, model = make_gan_like((3, 3, 3), "tanh")
    pattern = str(tmp_path / "step_{step:04d}_e{epoch}.png")
    grid = SampleGrid(
        generator,
        NOISE,
        pattern,
        every_n_epochs=None,
        every_n_steps=2,
        value_range=(-1, 1),
    )
    fit(model, [grid])  # 6 steps: frames after steps 2, 4 and 6
    names = [p.rsplit("/", 1)[-1] for p in grid.paths]
    assert names == ["step_0002_e1.png", "step_0004_e2.png", "step_0006_e2.png"]
    frames = [read_png(p) for p in grid.paths]
    assert frames[-1].shape == (2 * 3 + 1, 3 * 3 + 2, 3)
    expected = generated(generator, (-1, 1))
    got = tiles(frames[-1], 6, 3, 3, rows=2).astype(int)
    assert np.abs(got - expected).max() <= 1
    assert np.abs(frames[0].astype(int) - frames[1]).max() > 1


def test_flat_outputs_with_image_shape_and_callable_generator(tmp_path):
    def generator(inputs):
        return np.tile(inputs[:, :1], (1, 6)) * 0 + np.arange(6) / 5.0

    path = str(tmp_path / "g.png")
    grid = SampleGrid(generator, NOISE[:4], path, image_shape=(2, 3))
    _, model = make_gan_like((1, 1, 1), None)
    fit(model, [grid], epochs=1)
    got = tiles(read_png(path), 4, 2, 3, rows=2)
    expected = np.round(np.arange(6).reshape(2, 3) / 5.0 * 255)
    np.testing.assert_array_equal(got, np.broadcast_to(expected, (4, 2, 3)))


def test_points_mode_draws_a_scatter_plot(tmp_path):
    generator, model = make_gan_like((2,), None)
    reference = np.array([[0.0, 0.0], [1.0, 1.0]])
    grid = SampleGrid(
        generator,
        NOISE,
        str(tmp_path / "p{epoch}.png"),
        mode="points",
        size=64,
        limits=(-3, 3),
        reference=reference,
    )
    fit(model, [grid], epochs=1)
    points = keras.ops.convert_to_numpy(generator(NOISE))
    expected = plot_points(points, 64, (-3, 3), reference)
    np.testing.assert_array_equal(read_png(grid.paths[0]), expected)


@pytest.mark.parametrize("every", ["epochs", "steps"])
def test_missing_pillow_fails_at_train_begin(tmp_path, monkeypatch, every):
    """Without Pillow, `fit` stops before its first step (not after the
    first epoch) and says how to install it."""
    generator, model = make_gan_like((2, 2, 1), "sigmoid")
    frequency = {"every_n_epochs": 1}
    if every == "steps":
        frequency = {"every_n_epochs": None, "every_n_steps": 1}
    grid = SampleGrid(generator, NOISE, str(tmp_path / "x.png"), **frequency)
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    ended = []
    counter = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: ended.append(batch)
    )
    with pytest.raises(ImportError, match="pip install Pillow"):
        fit(model, [grid, counter], epochs=1)
    assert ended == []
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 0
    assert grid.paths == [] and os.listdir(tmp_path) == []


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="mode"):
        SampleGrid(None, NOISE, mode="video")
    with pytest.raises(ValueError, match="never write"):
        SampleGrid(None, NOISE, every_n_epochs=None)
    with pytest.raises(ValueError, match="fields"):
        SampleGrid(None, NOISE, "s_{batch}.png")
    with pytest.raises(TypeError, match="generator"):
        SampleGrid("generator", NOISE)


def test_only_process_zero_writes_the_frames(tmp_path, monkeypatch):
    monkeypatch.setattr(
        "keras_cool.callbacks.sample_grid.process_shard", lambda: (1, 2)
    )
    generator, model = make_gan_like((4, 5, 1), "sigmoid")
    pattern = str(tmp_path / "epoch_{epoch:03d}.png")
    grid = SampleGrid(generator, NOISE, pattern, rows=2)
    fit(model, [grid])
    assert grid.paths == [pattern.format(epoch=1), pattern.format(epoch=2)]
    assert os.listdir(tmp_path) == []
