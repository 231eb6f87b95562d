"""The EMA update of `keras_cool._backend` on the current backend."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_cool._backend import make_ema_average

RNG = np.random.default_rng(0)
# Shadows far from the weights: `s - (s - w)` is not `w` in float32 here,
# so only a true copy gives the weights back bit for bit.
SHADOWS = [
    (1e6 * RNG.standard_normal((33, 7))).astype("float32"),
    (1e6 * RNG.standard_normal((5,))).astype("float32"),
]
WEIGHTS = [RNG.standard_normal(s.shape).astype("float32") for s in SHADOWS]


def call(fn, compiled):
    """`fn()`, inside one `tf.function` where `compiled` on TensorFlow."""
    if compiled and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, autograph=False)()
    return fn()


def run(d, positive, compiled=False):
    shadows = [keras.Variable(s) for s in SHADOWS]
    weights = [ops.convert_to_tensor(w) for w in WEIGHTS]
    average = make_ema_average()

    def update():
        average(shadows, weights, ops.convert_to_tensor(d, "float32"), positive)

    call(update, compiled)
    return [np.asarray(ops.convert_to_numpy(s.value)) for s in shadows]


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("positive", [False, True])
def test_average_between_the_ends(positive, compiled):
    d = np.float32(0.75)
    for got, s, w in zip(run(d, positive, compiled), SHADOWS, WEIGHTS):
        np.testing.assert_allclose(got, d * s + (1 - d) * w, rtol=1e-6)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("positive", [False, True])
def test_decay_one_leaves_the_shadows_unchanged(positive, compiled):
    for got, s in zip(run(1.0, positive, compiled), SHADOWS):
        np.testing.assert_array_equal(got, s)


@pytest.mark.parametrize("compiled", [False, True])
def test_decay_zero_copies_the_weights_exactly(compiled):
    assert not all(
        np.array_equal(s - (s - w), w) for s, w in zip(SHADOWS, WEIGHTS)
    )
    for got, w in zip(run(0.0, False, compiled), WEIGHTS):
        np.testing.assert_array_equal(got, w)


@pytest.mark.parametrize("d", [0.999, 0.9995, 0.9999])
def test_a_weight_that_stays_put_keeps_its_shadow(d):
    # The update's two coefficients must sum to 1: TensorFlow's fused form
    # (var + a * w) / (1 + a) with a rounded carelessly drifts a steady
    # shadow by up to 1e-4 (relative) at these decays.
    weight = RNG.uniform(0.5, 2.0, (1000,)).astype("float32")
    shadow = keras.Variable(weight)
    average = make_ema_average()
    decay = ops.convert_to_tensor(d, "float32")
    tensor = ops.convert_to_tensor(weight)

    def steps():
        for _ in range(300):
            average([shadow], [tensor], decay, True)

    call(steps, compiled=True)
    got = np.asarray(ops.convert_to_numpy(shadow.value))
    np.testing.assert_allclose(got, weight, rtol=3e-7, atol=0)
