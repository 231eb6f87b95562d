"""keras_cool.optimizers.schedules: registered `LearningRateSchedule`s."""

from keras_cool.optimizers.schedules.piecewise_linear import PiecewiseLinear

__all__ = ["PiecewiseLinear"]
