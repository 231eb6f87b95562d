import keras
import numpy as np
import pytest
from keras import ops

from keras_cool.callbacks import LinearWarmup
from tests.callbacks.conftest import StepLosses


def mean_output(y_true, y_pred):
    # d loss / d kernel == 1 for inputs of ones: SGD moves it by -lr.
    return ops.mean(y_pred)


class KernelRecorder(StepLosses):
    """Reads the kernel each step from the loss logs, without a state sync.

    The loss of step k is the kernel before update k (see `StepLosses`);
    the kernel after training is read at the end.
    """

    def on_train_end(self, logs=None):
        self.losses.append(float(self.model.layers[-1].kernel.numpy()[0, 0]))

    def used_learning_rates(self):
        return -np.diff(self.losses)


def make_model(learning_rate):
    model = keras.Sequential(
        [
            keras.Input((1,)),
            keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate), loss=mean_output
    )
    return model


def fit(model, callbacks, steps=4, epochs=2):
    x = np.ones((2 * steps, 1), "float32")
    recorder = KernelRecorder()
    model.fit(
        x,
        x,
        batch_size=2,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks + [recorder],
    )
    return recorder.used_learning_rates()


def test_float_learning_rate_warmup_then_exact_base():
    model = make_model(0.1)
    used = fit(model, [LinearWarmup(warmup_steps=5)])
    expected = [0.1 * (k + 1) / 5 for k in range(5)] + [0.1] * 3
    np.testing.assert_allclose(used, expected, rtol=1e-4, atol=1e-6)
    base = np.float32(0.1)
    assert model.optimizer.learning_rate.numpy() == base
    assert isinstance(model.optimizer.learning_rate, keras.Variable)


def test_warmup_epochs_uses_steps_per_epoch():
    model = make_model(0.2)
    used = fit(model, [LinearWarmup(warmup_epochs=1)], steps=3, epochs=2)
    expected = [0.2 / 3, 0.4 / 3, 0.2, 0.2, 0.2, 0.2]
    np.testing.assert_allclose(used, expected, rtol=1e-4, atol=1e-6)


def test_schedule_is_wrapped_then_restored():
    schedule = keras.optimizers.schedules.ExponentialDecay(
        0.1, decay_steps=1, decay_rate=0.5
    )
    model = make_model(schedule)
    config = model.optimizer.get_config()["learning_rate"]
    used = fit(model, [LinearWarmup(warmup_steps=3)])
    base = [0.1 * 0.5**k for k in range(8)]
    factor = [1 / 3, 2 / 3] + [1.0] * 6
    np.testing.assert_allclose(
        used, np.multiply(base, factor), rtol=1e-4, atol=1e-6
    )
    assert model.optimizer.get_config()["learning_rate"] == config
    # The optimizer still trains with the original schedule afterwards.
    used = fit(model, [], steps=2, epochs=1)
    np.testing.assert_allclose(
        used, [0.1 * 0.5**8, 0.1 * 0.5**9], rtol=1e-4, atol=1e-6
    )


def test_unfinished_warmup_restores_and_resumes():
    model = make_model(0.1)
    warmup = LinearWarmup(warmup_steps=6)
    used = fit(model, [warmup], steps=2, epochs=1)
    np.testing.assert_allclose(used, [0.1 / 6, 0.2 / 6], rtol=1e-4, atol=1e-6)
    assert model.optimizer.learning_rate.numpy() == np.float32(0.1)
    used = fit(model, [warmup], steps=2, epochs=3)
    expected = [0.3 / 6, 0.4 / 6, 0.5 / 6, 0.1, 0.1, 0.1]
    np.testing.assert_allclose(used, expected, rtol=1e-4, atol=1e-6)


def test_unfinished_schedule_warmup_resumes_in_next_fit():
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [100], [0.1, 0.1]
    )
    model = make_model(schedule)
    warmup = LinearWarmup(warmup_steps=4)
    used = fit(model, [warmup], steps=2, epochs=1)
    np.testing.assert_allclose(used, [0.025, 0.05], rtol=1e-4, atol=1e-6)
    used = fit(model, [warmup], steps=2, epochs=2)
    np.testing.assert_allclose(
        used, [0.075, 0.1, 0.1, 0.1], rtol=1e-4, atol=1e-6
    )


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="exactly one"):
        LinearWarmup()
    with pytest.raises(ValueError, match="exactly one"):
        LinearWarmup(warmup_steps=2, warmup_epochs=1)
    with pytest.raises(ValueError, match="> 0"):
        LinearWarmup(warmup_steps=0)


def test_config_round_trip():
    warmup = LinearWarmup(warmup_epochs=2, verbose=1)
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(warmup)
    )
    assert isinstance(restored, LinearWarmup)
    assert restored.get_config() == warmup.get_config()


def test_model_saved_mid_warmup_loads_in_safe_mode(tmp_path):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)
    model = make_model(schedule)
    path = str(tmp_path / "mid.keras")
    checkpoint = keras.callbacks.ModelCheckpoint(path, save_freq=1)
    fit(model, [LinearWarmup(warmup_steps=20), checkpoint], steps=2, epochs=1)
    loaded = keras.saving.load_model(
        path, custom_objects={"mean_output": mean_output}
    )
    config = loaded.optimizer.get_config()["learning_rate"]
    assert config["class_name"] == "WarmupSchedule"
    assert config["config"]["warmup_steps"] == 20


def test_start_step_zero_ties_warmup_to_optimizer_steps():
    model = make_model(0.1)
    fit(model, [], steps=3, epochs=1)  # the optimizer is at step 3
    used = fit(model, [LinearWarmup(warmup_steps=5, start_step=0)], epochs=1)
    np.testing.assert_allclose(used, [0.08, 0.1, 0.1, 0.1], rtol=1e-4)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)
    model = make_model(schedule)
    fit(model, [], steps=3, epochs=1)
    warmup = LinearWarmup(warmup_steps=2, start_step=0)
    used = fit(model, [warmup], steps=2, epochs=1)  # warmup already over
    np.testing.assert_allclose(used, [0.1 * 0.5**3, 0.1 * 0.5**4], rtol=1e-4)


def test_mixed_precision_loss_scale_optimizer():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        float_model = make_model(0.1)
        schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)
        schedule_model = make_model(schedule)
        used_float = fit(float_model, [LinearWarmup(warmup_steps=3)])
        used_schedule = fit(schedule_model, [LinearWarmup(warmup_steps=3)])
    finally:
        keras.config.set_dtype_policy("float32")
    assert isinstance(
        float_model.optimizer, keras.optimizers.LossScaleOptimizer
    )
    # float16 kernels: compare to 1e-2.
    np.testing.assert_allclose(
        used_float, [0.1 / 3, 0.2 / 3] + [0.1] * 6, rtol=1e-2
    )
    expected = [0.1 * 0.5**k * min(1, (k + 1) / 3) for k in range(8)]
    np.testing.assert_allclose(used_schedule, expected, rtol=1e-2, atol=1e-4)


def test_float_warmup_in_graph_gives_the_python_values_per_step(
    monkeypatch,
):
    from keras_cool.callbacks import _step_schedule

    model = make_model(0.1)
    warmup = LinearWarmup(warmup_steps=6)
    in_graph = np.concatenate(
        [fit(model, [warmup], steps=2, epochs=2), fit(model, [warmup])]
    )
    assert warmup._member is not None  # it ran inside the train step

    monkeypatch.setattr(
        _step_schedule.StepSchedule, "supported", lambda *args: False
    )
    model = make_model(0.1)
    warmup = LinearWarmup(warmup_steps=6)
    python = np.concatenate(
        [fit(model, [warmup], steps=2, epochs=2), fit(model, [warmup])]
    )
    assert warmup._member is None
    np.testing.assert_allclose(in_graph, python, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        python[:6], [0.1 * (k + 1) / 6 for k in range(6)], rtol=1e-4
    )


def test_float_warmup_leaves_later_learning_rate_changes_alone():
    class Halve(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            lr = self.model.optimizer.learning_rate
            lr.assign(lr * 0.5)

    model = make_model(0.1)
    used = fit(model, [LinearWarmup(warmup_steps=2), Halve()], steps=3)
    expected = [0.05, 0.1, 0.1, 0.05, 0.05, 0.05]
    np.testing.assert_allclose(used, expected, rtol=1e-4, atol=1e-6)
