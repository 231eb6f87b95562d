"""keras_cool.layers: public objects are listed in `__all__`."""

__all__ = []
