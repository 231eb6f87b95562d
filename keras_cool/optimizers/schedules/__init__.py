"""keras_cool.optimizers.schedules: registered `LearningRateSchedule`s."""

from keras_cool.optimizers.schedules.piecewise_linear import PiecewiseLinear
from keras_cool.optimizers.schedules.warmup_schedule import WarmupSchedule

__all__ = ["PiecewiseLinear", "WarmupSchedule"]
