"""PiecewiseLinear: bert4keras's `piecewise_linear` learning-rate schedule."""

import math

import keras
from keras import ops

__all__ = ["PiecewiseLinear"]


def _points(schedule):
    """Sorted `[(step, value)]` from a dict or a list of pairs."""
    if isinstance(schedule, dict):
        items = list(schedule.items())
    else:
        try:
            items = [tuple(p) for p in schedule]
        except TypeError:
            items = None
        if items is None or any(len(p) != 2 for p in items):
            raise ValueError(
                "schedule must be a dict {step: multiplier} or a list of "
                f"(step, multiplier) pairs, got {schedule!r}."
            )
    if not items:
        raise ValueError("schedule needs at least one (step, value) point.")
    points = []
    for step, value in items:
        step, value = float(step), float(value)
        if not (math.isfinite(step) and step >= 0 and step == int(step)):
            raise ValueError(
                f"schedule steps must be integers >= 0, got {step!r}."
            )
        if not math.isfinite(value):
            raise ValueError(f"schedule values must be finite, got {value}.")
        points.append((int(step), value))
    points.sort()
    steps = [s for s, _ in points]
    if len(set(steps)) != len(steps):
        raise ValueError(f"schedule has a repeated step: {steps}.")
    return points


@keras.saving.register_keras_serializable(package="keras_cool")
class PiecewiseLinear(keras.optimizers.schedules.LearningRateSchedule):
    """Learning rate linear between `{step: multiplier}` points.

    bert4keras's `piecewise_linear(t, schedule)` (used by
    `extend_with_piecewise_linear_lr`): the multiplier at optimizer step
    `t` interpolates linearly between consecutive points, is constant after
    the last one, and (with `from_zero=True`, bert4keras's default) starts
    from 0 at step 0 unless a point is given at step 0. Before the first
    point with `from_zero=False` it is the first point's value. The learning
    rate is `base_learning_rate * multiplier(t)`.

    `{1000: 1, 2000: 0.1}`: linear warmup from 0 to the base rate over
    1000 steps, linear decay to a tenth of it by step 2000, then constant.

    Registered and serializable (the points are stored as a list of pairs,
    since JSON keys are strings), so `keras_cool.callbacks.LinearWarmup`
    can wrap it and a saved optimizer loads back.

    Args:
        schedule: dict `{step: multiplier}` or list of `(step, multiplier)`
            pairs; steps are integers >= 0, all different.
        base_learning_rate: the learning rate the multipliers scale.
            Defaults to `1.0`.
        from_zero: prepend the point `(0, 0.0)` when no point is at step 0.
            Defaults to `True`.

    Example:

    ```python
    schedule = keras_cool.optimizers.schedules.PiecewiseLinear(
        {1000: 1.0, 10_000: 0.1}, base_learning_rate=2e-5
    )
    float(schedule(500))  # 1e-05: halfway through the warmup
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    ```

    Reference:
        Su Jianlin, bert4keras `backend.piecewise_linear` and
        `optimizers.extend_with_piecewise_linear_lr`,
        https://github.com/bojone/bert4keras.
    """

    def __init__(self, schedule, base_learning_rate=1.0, from_zero=True):
        points = _points(schedule)
        if from_zero and points[0][0] != 0:
            points = [(0, 0.0)] + points
        base = float(base_learning_rate)
        if not math.isfinite(base):
            raise ValueError(
                f"base_learning_rate must be finite, got {base_learning_rate}."
            )
        self.points = points
        self.base_learning_rate = base
        self.from_zero = bool(from_zero)

    def multiplier(self, step):
        """The multiplier at `step` (a tensor or a number)."""
        t = ops.cast(step, "float32")
        value = ops.full_like(t, self.points[0][1])
        for (t0, v0), (t1, v1) in zip(self.points, self.points[1:]):
            slope = (v1 - v0) / (t1 - t0)
            inside = ops.logical_and(t >= t0, t < t1)
            value = ops.where(inside, v0 + slope * (t - t0), value)
        last_step, last_value = self.points[-1]
        return ops.where(t >= last_step, last_value, value)

    def __call__(self, step):
        return self.base_learning_rate * self.multiplier(step)

    def get_config(self):
        return {
            "schedule": [[s, v] for s, v in self.points],
            "base_learning_rate": self.base_learning_rate,
            "from_zero": self.from_zero,
        }
