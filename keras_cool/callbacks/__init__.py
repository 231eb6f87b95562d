"""keras_cool.callbacks: public objects are listed in `__all__`."""

from keras_cool.callbacks.evaluator import Evaluator
from keras_cool.callbacks.exponential_moving_average import (
    ExponentialMovingAverage,
)
from keras_cool.callbacks.linear_warmup import LinearWarmup
from keras_cool.callbacks.sample_grid import SampleGrid
from keras_cool.callbacks.variable_scheduler import VariableScheduler

__all__ = [
    "Evaluator",
    "ExponentialMovingAverage",
    "LinearWarmup",
    "SampleGrid",
    "VariableScheduler",
]
