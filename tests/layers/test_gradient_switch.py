import os

import keras
import numpy as np
import pytest

from keras_cool.layers import GradientSwitch
from keras_cool.testing import run_layer_test

MODES = [("pass", 1.0), ("stop", 0.0), ("reverse", -2.5), ("scale", 2.5)]
FINITE = np.array(
    [1.5, -3.25, 0.0, 1e-30, -7e20, 3.0e38, 0.1, -1e-3], "float32"
)


def test_layer_contract():
    run_layer_test(
        GradientSwitch,
        init_kwargs={"mode": "reverse", "scale": 0.5},
        input_shape=(3, 4),
        expected_output_shape=(3, 4),
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=1,
    )


@pytest.mark.parametrize("mode,factor", MODES)
def test_forward_is_exactly_the_input(mode, factor):
    layer = GradientSwitch(mode, scale=2.5)
    x = np.concatenate([FINITE, np.random.normal(size=64).astype("float32")])
    y = keras.ops.convert_to_numpy(layer(x))
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y, x)  # exact, not allclose
    assert float(np.asarray(layer.factor)) == factor


@pytest.mark.parametrize("mode,factor", MODES)
def test_gradient_is_factor_times_upstream(mode, factor, backend_grad):
    layer = GradientSwitch(mode, scale=2.5)
    x = keras.Variable(np.random.normal(size=(4, 3)), dtype="float32")
    w = np.random.normal(size=(4, 3)).astype("float32")
    (grad,) = backend_grad(
        lambda: keras.ops.sum(keras.ops.multiply(layer(x), w)), [x]
    )
    np.testing.assert_allclose(grad, factor * w, rtol=1e-6, atol=0)


@pytest.mark.parametrize("mode", ["pass", "stop", "reverse"])
def test_non_finite_values_pass_through_with_zero_gradient(mode, backend_grad):
    layer = GradientSwitch(mode, scale=3.0)
    values = np.array([1.0, np.inf, -np.inf, np.nan, -2.0], "float32")
    y = keras.ops.convert_to_numpy(layer(values))
    # The bare formula sg(x) + s * (x - sg(x)) would give NaN for +-inf.
    np.testing.assert_array_equal(y, values)
    x = keras.Variable(values, dtype="float32")
    w = np.array([2.0, 1.0, 1.0, 1.0, 3.0], "float32")

    def loss():
        y = layer(x)
        safe = keras.ops.where(keras.ops.isfinite(y), y, 0.0)
        return keras.ops.sum(keras.ops.multiply(safe, w))

    (grad,) = backend_grad(loss, [x])
    factor = float(np.asarray(layer.factor))
    np.testing.assert_array_equal(grad, [2 * factor, 0, 0, 0, 3 * factor])


def test_integer_input_is_returned_unchanged():
    x = np.array([1, -2, 3], "int32")
    y = keras.ops.convert_to_numpy(GradientSwitch("reverse")(x))
    np.testing.assert_array_equal(y, x)


def test_mixed_precision_keeps_dtype():
    layer = GradientSwitch("scale", scale=0.5, dtype="mixed_float16")
    x = keras.ops.convert_to_tensor(FINITE[:3], dtype="float16")
    y = layer(x)
    assert keras.backend.standardize_dtype(y.dtype) == "float16"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(y), FINITE[:3])


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="use one of"):
        GradientSwitch("identity")
    with pytest.raises(ValueError, match="finite"):
        GradientSwitch("scale", scale=float("nan"))
    with pytest.raises(ValueError, match="Python float"):
        GradientSwitch("scale", scale="2")
    layer = GradientSwitch("pass")
    with pytest.raises(ValueError, match="use one of"):
        layer.set_mode("flip")
    assert layer.mode == "pass"


def test_keras_round_trip_keeps_mode_and_factor(tmp_path):
    inputs = keras.Input((3,))
    switch = GradientSwitch("pass", name="switch")
    model = keras.Model(inputs, keras.layers.Dense(2)(switch(inputs)))
    switch.set_mode("reverse", scale=0.25)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    again = loaded.get_layer("switch")
    assert isinstance(again, GradientSwitch)
    assert (again.mode, again.scale) == ("reverse", 0.25)
    assert float(np.asarray(again.factor)) == -0.25


class _StopAfter(keras.callbacks.Callback):
    """Switches the gradient off after `batch` batches, mid-fit."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch
        self.snapshot = None

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            # Through self.model first: on JAX this syncs the state.
            self.model.get_layer("switch").set_mode("stop")
            self.snapshot = np.array(self.model.get_layer("body").kernel)


def test_callback_changes_factor_during_fit_without_recompiling():
    inputs = keras.Input((4,))
    body = keras.layers.Dense(4, name="body")
    head = keras.layers.Dense(1, name="head")
    outputs = head(GradientSwitch("pass", name="switch")(body(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.normal(size=(64, 4)).astype("float32")
    y = np.random.normal(size=(64, 1)).astype("float32")
    start = np.array(body.kernel)
    head_before = np.array(head.kernel)
    callback = _StopAfter(batch=3)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    # Body trained before the switch, then froze; the head kept training.
    assert not np.allclose(callback.snapshot, start)
    np.testing.assert_array_equal(np.array(body.kernel), callback.snapshot)
    assert not np.allclose(np.array(head.kernel), head_before)
    assert float(np.asarray(model.get_layer("switch").factor)) == 0.0
