import keras
import numpy as np
import pytest
from keras import ops

from keras_cool.callbacks import VariableScheduler
from tests.callbacks.conftest import StepLosses


class ScaledLoss(keras.layers.Layer):
    """Identity that adds `scale` (a scheduled variable) as a loss."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scale = keras.Variable(0.0, trainable=False, name="scale")

    def call(self, x):
        self.add_loss(self.scale * ops.mean(ops.ones_like(x)))
        return x


def make_model():
    layer = ScaledLoss()
    model = keras.Sequential(
        [
            keras.Input((1,)),
            layer,
            keras.layers.Dense(1, kernel_initializer="zeros"),
        ]
    )
    # Zero inputs and targets: the mse is 0, the loss is exactly `scale`.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    return model, layer


def fit(model, callbacks, steps=3, epochs=2):
    x = np.zeros((2 * steps, 1), "float32")
    recorder = StepLosses()
    history = model.fit(
        x,
        x,
        batch_size=2,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks + [recorder],
    )
    return np.array(recorder.losses), history.history


def step_schedule(step):
    return step + 1.0


def test_per_step_changes_the_loss_inside_fit():
    model, layer = make_model()
    scheduler = VariableScheduler(layer.scale, step_schedule, per="step")
    losses, history = fit(model, [scheduler])
    np.testing.assert_allclose(losses, [1, 2, 3, 4, 5, 6], atol=1e-4)
    assert history["scale"] == [3.0, 6.0]
    # The step index is the optimizer's: a second fit continues from 6.
    losses, _ = fit(model, [scheduler], epochs=1)
    np.testing.assert_allclose(losses, [7, 8, 9], atol=1e-4)


def test_per_epoch_changes_the_loss_inside_fit():
    model, layer = make_model()
    scheduler = VariableScheduler(
        layer.scale, lambda epoch: 10.0 * (epoch + 1), per="epoch", name="w"
    )
    losses, history = fit(model, [scheduler])
    np.testing.assert_allclose(losses, [10, 10, 10, 20, 20, 20], atol=1e-4)
    assert history["w"] == [10.0, 20.0]
    assert float(layer.scale.numpy()) == 20.0


def test_constant_tail_is_applied_and_skipped():
    model, layer = make_model()
    scheduler = VariableScheduler(
        layer.scale, lambda step: min(step, 2) * 0.5, name=False
    )
    losses, history = fit(model, [scheduler])
    np.testing.assert_allclose(losses, [0, 0.5, 1, 1, 1, 1], atol=1e-4)
    assert "scale" not in history


def test_python_number_is_a_clear_type_error():
    with pytest.raises(TypeError, match="wrap it in keras.Variable"):
        VariableScheduler(0.1, step_schedule)
    with pytest.raises(TypeError, match="wrap it in keras.Variable"):
        VariableScheduler(np.float32(0.1), step_schedule)
    variable = keras.Variable(1.0)
    with pytest.raises(TypeError, match="callable"):
        VariableScheduler(variable, 0.5)
    with pytest.raises(ValueError, match="per must be"):
        VariableScheduler(variable, step_schedule, per="batch")


def test_untracked_variable_is_a_clear_error():
    model, _ = make_model()
    scheduler = VariableScheduler(keras.Variable(1.0), step_schedule)
    with pytest.raises(ValueError, match="not tracked by the model"):
        fit(model, [scheduler])


def test_epoch_losses_and_progress_bar_with_async_dispatch(capsys):
    # No callback overrides a batch-end hook here, so Keras dispatches them
    # asynchronously (JAX); the epoch means show every per-step write landed.
    model, layer = make_model()
    scheduler = VariableScheduler(layer.scale, step_schedule)
    x = np.zeros((6, 1), "float32")
    history = model.fit(
        x, x, batch_size=2, epochs=2, shuffle=False, callbacks=[scheduler]
    )
    np.testing.assert_allclose(history.history["loss"], [2, 5], atol=1e-4)
    out = capsys.readouterr().out
    assert "scale: 3.0000" in out and "scale: 6.0000" in out


@pytest.mark.backends("jax")
def test_per_step_under_data_parallel():
    # Not the multi_device marker: tests/conftest.py evaluates it with
    # keras.distribution.list_devices(), which raises on torch.
    if len(keras.distribution.list_devices()) < 2:
        pytest.skip("needs 2 devices (XLA_FLAGS=...device_count=2)")
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    try:
        model, layer = make_model()
        scheduler = VariableScheduler(layer.scale, step_schedule)
        losses, _ = fit(model, [scheduler])
    finally:
        keras.distribution.set_distribution(None)
    np.testing.assert_allclose(losses, [1, 2, 3, 4, 5, 6], atol=1e-4)


def ops_schedule(step):
    # Written in keras.ops: runs inside the train step.
    return ops.minimum(step * 0.25, 1.0) + 1.0 + ops.floor(step / 4)


def forbid_python_writes(scheduler, monkeypatch):
    def fail(index):
        raise AssertionError(f"Python write at step {index}")

    monkeypatch.setattr(scheduler, "_assign", fail)


@pytest.mark.parametrize(
    "schedule",
    [
        ops_schedule,
        keras.optimizers.schedules.PiecewiseConstantDecay(
            [2, 4], [1.0, 3.0, 5.0]
        ),
        keras.optimizers.schedules.ExponentialDecay(2.0, 3, 0.5),
    ],
    ids=["keras_ops", "piecewise", "exponential"],
)
def test_in_graph_path_gives_the_python_values_per_step(schedule, monkeypatch):
    model, layer = make_model()
    python = VariableScheduler(layer.scale, schedule, in_graph=False)
    expected, expected_history = fit(model, [python])
    expected_next, _ = fit(model, [python], epochs=1)

    model, layer = make_model()
    scheduler = VariableScheduler(layer.scale, schedule)
    forbid_python_writes(scheduler, monkeypatch)
    losses, history = fit(model, [scheduler])
    np.testing.assert_allclose(losses, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        history["scale"], expected_history["scale"], rtol=1e-6
    )
    # A second fit continues from the optimizer's step count.
    losses, _ = fit(model, [scheduler], epochs=1)
    np.testing.assert_allclose(losses, expected_next, rtol=1e-5, atol=1e-5)
    assert len(np.unique(expected)) >= 3  # the values do change


def test_in_graph_path_keeps_async_dispatch():
    model, layer = make_model()
    scheduler = VariableScheduler(layer.scale, ops_schedule)
    callbacks = keras.callbacks.CallbackList([scheduler], model=model)
    # As without callbacks (Keras never dispatches async on TensorFlow).
    plain = keras.callbacks.CallbackList([], model=model)
    assert callbacks._async_train == plain._async_train
    fit(model, [scheduler])
    assert scheduler._member is not None  # it ran inside the train step


def test_in_graph_true_rejects_a_python_schedule():
    model, layer = make_model()
    scheduler = VariableScheduler(
        layer.scale, lambda step: min(step, 2) * 0.5, in_graph=True
    )
    with pytest.raises(ValueError, match="in_graph=True"):
        fit(model, [scheduler])
    with pytest.raises(ValueError, match="in_graph must be"):
        VariableScheduler(layer.scale, ops_schedule, in_graph="yes")
