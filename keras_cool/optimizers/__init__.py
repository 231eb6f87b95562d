"""keras_cool.optimizers: learning-rate schedules (`schedules`)."""

from keras_cool.optimizers import schedules

__all__ = ["schedules"]
