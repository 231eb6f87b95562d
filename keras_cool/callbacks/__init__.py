"""keras_cool.callbacks: public objects are listed in `__all__`."""

from keras_cool.callbacks.exponential_moving_average import (
    ExponentialMovingAverage,
)

__all__ = ["ExponentialMovingAverage"]
