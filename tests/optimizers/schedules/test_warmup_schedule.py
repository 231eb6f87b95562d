import keras
import numpy as np
import pytest

from keras_cool.optimizers.schedules import WarmupSchedule


def test_warmup_schedule_serializes():
    schedule = WarmupSchedule(
        keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5), 4, 2
    )
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(schedule)
    )
    assert isinstance(restored, WarmupSchedule)
    for step in [0, 2, 3, 5, 6, 20]:
        np.testing.assert_allclose(
            float(restored(step)), float(schedule(step)), rtol=1e-6
        )
    np.testing.assert_allclose(float(schedule(3)), 0.1 * 0.5**0.3 / 2)


def test_config_round_trip():
    schedule = WarmupSchedule(
        keras.optimizers.schedules.CosineDecay(1e-3, 100), 10, start_step=5
    )
    config = schedule.get_config()
    assert config["warmup_steps"] == 10 and config["start_step"] == 5
    restored = WarmupSchedule.from_config(config)
    assert restored.get_config() == config
    assert isinstance(restored.schedule, keras.optimizers.schedules.CosineDecay)
    for step in [0, 5, 9, 14, 15, 60]:
        np.testing.assert_allclose(
            float(restored(step)), float(schedule(step)), rtol=1e-6
        )


def test_factor_is_linear_then_exactly_one():
    base = keras.optimizers.schedules.ExponentialDecay(0.1, 1, 1.0)
    schedule = WarmupSchedule(base, 4, start_step=2)
    values = [float(schedule(step)) for step in range(8)]
    np.testing.assert_allclose(
        values, [0.0, 0.0, 0.025, 0.05, 0.075, 0.1, 0.1, 0.1], rtol=1e-6
    )


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TypeError, match="LearningRateSchedule"):
        WarmupSchedule(0.1, 4)
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupSchedule(keras.optimizers.schedules.CosineDecay(0.1, 4), 0)
