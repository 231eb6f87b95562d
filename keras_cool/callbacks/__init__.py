"""keras_cool.callbacks: public objects are listed in `__all__`."""

from keras_cool.callbacks.linear_warmup import LinearWarmup

__all__ = ["LinearWarmup"]
