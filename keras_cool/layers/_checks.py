"""Private: argument checks shared by the layers' constructors."""

import math

import numpy as np

__all__ = ["check_int", "check_weight"]


def check_int(name, value, minimum, owner):
    """Raises unless `value` is an int (not a bool or a str) >= minimum:
    a `ValueError` for a number that is not an int >= minimum (2.5), a
    `TypeError` for anything else ("10", None)."""
    if isinstance(value, (float, np.floating)):
        raise ValueError(
            f"{owner}: `{name}` must be an int >= {minimum}, got {value!r}."
        )
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"{owner}: `{name}` must be an int >= {minimum}, got "
            f"{type(value).__name__} {value!r}."
        )
    if value < minimum:
        raise ValueError(
            f"{owner}: `{name}` must be >= {minimum}, got {value!r}."
        )
    return int(value)


def check_weight(name, value, owner):
    """Raises unless `value` is a finite number >= 0; returns a float."""
    if isinstance(value, (bool, str)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"{owner}: `{name}` must be a finite float >= 0, got "
            f"{type(value).__name__} {value!r}."
        )
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(
            f"{owner}: `{name}` must be a finite float >= 0, got {value}."
        )
    return value
