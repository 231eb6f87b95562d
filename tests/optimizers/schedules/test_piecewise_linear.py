import json

import keras
import numpy as np
import pytest
from keras import ops

from keras_cool.callbacks import LinearWarmup
from keras_cool.optimizers.schedules import PiecewiseLinear


def bert4keras_piecewise_linear(t, schedule, from_zero=True):
    """bert4keras `backend.piecewise_linear`, transcribed to numpy."""
    schedule = sorted(schedule.items())
    if from_zero and schedule[0][0] != 0:
        schedule = [(0, 0.0)] + schedule
    x = schedule[0][1]
    for i, (t_begin, x_begin_value) in enumerate(schedule):
        x_begin = x
        if i != len(schedule) - 1:
            dx = schedule[i + 1][1] - x_begin_value
            dt = schedule[i + 1][0] - t_begin
            x = x_begin_value + dx / dt * (t - t_begin)
        else:
            x = schedule[i][1]
        x = x if t >= t_begin else x_begin
    return x


@pytest.mark.parametrize(
    "points,from_zero",
    [
        ({1000: 1.0, 2000: 0.1}, True),
        ({10: 1.0}, True),
        ({0: 0.5, 5: 2.0, 7: 2.0, 20: 0.0}, True),
        ({4: 3.0, 9: 1.0}, False),
    ],
)
def test_matches_bert4keras(points, from_zero):
    schedule = PiecewiseLinear(
        points, base_learning_rate=1.0, from_zero=from_zero
    )
    last = max(points)
    for t in sorted(
        {0, 1, 3, 4, 5, 6, 7, 9, 10, 11, 999, 1000, 1500, last + 5}
    ):
        want = bert4keras_piecewise_linear(t, points, from_zero)
        got = float(schedule(t))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=t)


def test_base_learning_rate_scales_and_tensor_steps():
    schedule = PiecewiseLinear({100: 1.0, 200: 0.0}, base_learning_rate=3e-4)
    steps = ops.convert_to_tensor(np.array([0, 50, 100, 150, 300]), "int32")
    got = ops.convert_to_numpy(schedule(steps))
    np.testing.assert_allclose(
        got, 3e-4 * np.array([0.0, 0.5, 1.0, 0.5, 0.0]), rtol=1e-6
    )


def test_serializes_through_json():
    schedule = PiecewiseLinear({1000: 1, 2000: 0.1}, base_learning_rate=2e-5)
    blob = json.dumps(keras.optimizers.schedules.serialize(schedule))
    restored = keras.optimizers.schedules.deserialize(json.loads(blob))
    assert isinstance(restored, PiecewiseLinear)
    assert restored.get_config() == schedule.get_config()
    for t in (0, 500, 1500, 5000):
        assert float(restored(t)) == float(schedule(t))
    assert keras.saving.get_registered_name(PiecewiseLinear) == (
        "keras_cool>PiecewiseLinear"
    )


@pytest.mark.parametrize(
    "points,match",
    [
        ({}, "at least one"),
        ({-1: 1.0}, "integers >= 0"),
        ({1.5: 1.0}, "integers >= 0"),
        ({1: float("nan")}, "finite"),
        ([(1, 1.0), (1, 2.0)], "repeated"),
        ([(1, 2, 3)], "pairs"),
    ],
)
def test_bad_schedules_name_the_problem(points, match):
    with pytest.raises(ValueError, match=match):
        PiecewiseLinear(points)


def test_optimizer_uses_it_and_composes_with_linear_warmup():
    """SGD on loss = mean(kernel * 1): each step moves the kernel by -lr."""
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    schedule = PiecewiseLinear({0: 1.0, 8: 0.0}, base_learning_rate=0.8)
    model.compile(
        optimizer=keras.optimizers.SGD(schedule),
        loss=lambda y, p: ops.mean(p),
    )
    kernels = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            kernels.append(float(self.model.layers[-1].kernel.numpy()[0, 0]))

    x = np.ones((6, 1), "float32")
    model.fit(
        x,
        x,
        batch_size=1,
        shuffle=False,
        verbose=0,
        callbacks=[LinearWarmup(warmup_steps=3), Record()],
    )
    kernels.append(float(model.layers[-1].kernel.numpy()[0, 0]))
    used = -np.diff(kernels)
    base = 0.8 * (1 - np.arange(6) / 8)  # the schedule
    warmup = np.minimum((np.arange(6) + 1) / 3, 1.0)  # LinearWarmup on top
    np.testing.assert_allclose(used, base * warmup, rtol=1e-5, atol=1e-7)
    # LinearWarmup hands the original schedule back.
    config = model.optimizer.get_config()["learning_rate"]
    assert config["class_name"] == "PiecewiseLinear"
    assert config["config"] == schedule.get_config()
