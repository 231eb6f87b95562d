"""keras_cool.callbacks: public objects are listed in `__all__`."""

__all__ = []
