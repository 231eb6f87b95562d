"""Argument checks of `keras_cool.Sequence`: each names the argument."""

import numpy as np


def check_int(name, value, minimum):
    """Raise unless `value` is an int (not a bool) >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int; received {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; received {value}.")


def check_shard(shard):
    """`(index, count)` as ints, or a clear error."""
    try:
        index, count = shard
    except (TypeError, ValueError):
        raise ValueError(
            f'shard must be a pair (index, count) or "auto"; received '
            f"{shard!r}."
        ) from None
    check_int("shard count", count, 1)
    check_int("shard index", index, 0)
    if index >= count:
        raise ValueError(
            f"shard index must be < count; received shard={shard!r}."
        )
    return (int(index), int(count))
