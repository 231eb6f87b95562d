"""keras_cool.utils: public objects are listed in `__all__`."""

__all__ = []
