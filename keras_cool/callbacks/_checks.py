"""Private: argument checks shared by the callbacks' constructors."""

__all__ = ["check_count", "check_weights_context"]


def check_count(name, value, optional=False, integer=True):
    """Raises a `ValueError` naming `name` unless `value` is a count.

    `integer=True`: an integer >= 1; otherwise any number > 0. Booleans
    are refused; `None` passes when `optional`.
    """
    if value is None and optional:
        return
    if integer:
        if isinstance(value, bool) or value is None or int(value) < 1:
            extra = " or None" if optional else ""
            raise ValueError(
                f"{name} must be an integer >= 1{extra}, got {value}."
            )
    elif isinstance(value, bool) or value is None or not float(value) > 0:
        raise ValueError(f"{name} must be > 0, got {value}.")


def check_weights_context(weights_context):
    """Raises a `TypeError` unless `weights_context` is None or callable."""
    if weights_context is not None and not callable(weights_context):
        raise TypeError(
            "weights_context must be a zero-argument callable returning "
            "a context manager (e.g. ema.swapped_weights), got "
            f"{weights_context!r}."
        )
