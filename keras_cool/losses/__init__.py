"""keras_cool.losses: public objects are listed in `__all__`."""

__all__ = []
