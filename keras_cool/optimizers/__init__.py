"""keras_cool.optimizers: public objects are listed in `__all__`."""

from keras_cool.optimizers import schedules

__all__ = ["schedules"]
