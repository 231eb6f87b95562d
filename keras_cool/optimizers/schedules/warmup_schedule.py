"""A learning-rate schedule times a linear warmup factor."""

import keras
from keras import ops

__all__ = ["WarmupSchedule"]


@keras.saving.register_keras_serializable(package="keras_cool")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Multiplies a schedule by a linear warmup factor.

    `lr(step) = schedule(step) * (step - start_step + 1) / warmup_steps`
    while that factor is below 1, and exactly `schedule(step)` afterwards.
    The factor is a pure function of the optimizer's step, so it needs no
    variable and works inside compiled training on every backend.

    `keras_cool.callbacks.LinearWarmup` installs it for the duration of
    `fit` when the optimizer holds a `LearningRateSchedule`, and puts the
    original schedule back at the end of training. It is registered so that
    a model saved mid-warmup (e.g. by `ModelCheckpoint`) loads back.

    Args:
        schedule: the `keras.optimizers.schedules.LearningRateSchedule`
            to warm up.
        warmup_steps: number of optimizer steps of the warmup, >= 1.
        start_step: optimizer step at which the warmup starts. Defaults to
            `0`.

    Example:

    ```python
    schedule = keras_cool.optimizers.schedules.WarmupSchedule(
        keras.optimizers.schedules.CosineDecay(1e-3, 10_000), 500
    )
    optimizer = keras.optimizers.Adam(schedule)
    float(schedule(249))  # half of CosineDecay's value at step 249
    ```
    """

    def __init__(self, schedule, warmup_steps, start_step=0):
        if not isinstance(
            schedule, keras.optimizers.schedules.LearningRateSchedule
        ):
            raise TypeError(
                "WarmupSchedule wraps a keras.optimizers.schedules."
                f"LearningRateSchedule, got {type(schedule).__name__}."
            )
        if int(warmup_steps) < 1:
            raise ValueError(f"warmup_steps must be >= 1, got {warmup_steps}.")
        self.schedule = schedule
        self.warmup_steps = int(warmup_steps)
        self.start_step = int(start_step)

    def __call__(self, step):
        lr = self.schedule(step)
        done = ops.cast(step, "float32") - float(self.start_step - 1)
        factor = ops.maximum(done / float(self.warmup_steps), 0.0)
        factor = ops.cast(factor, ops.dtype(lr))
        return ops.where(factor < 1, lr * factor, lr)

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "warmup_steps": self.warmup_steps,
            "start_step": self.start_step,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.optimizers.schedules.deserialize(
            config["schedule"]
        )
        return cls(**config)
