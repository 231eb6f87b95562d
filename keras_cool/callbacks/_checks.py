"""Private: argument checks shared by the callbacks' constructors."""

import inspect
import os

from keras_cool._backend import split_across_processes

__all__ = [
    "check_count",
    "check_one_argument",
    "check_savable",
    "check_writable",
    "check_weights_context",
]


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


def check_one_argument(name, fn, example):
    """Raises a `TypeError` unless `fn` can be called with one positional
    argument (when its signature can be read)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None)
    except TypeError as error:
        raise TypeError(
            f"{name} must take exactly one positional argument ({example}), "
            f"but {getattr(fn, '__name__', fn)!r} has signature "
            f"{signature}: {error}."
        ) from None


def check_writable(name, path):
    """Raises unless the folder of `path` exists (or can be created) and is
    writable; called at `on_train_begin`, before any training step."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise OSError(
            f"{name}={os.fspath(path)!r}: cannot create the folder "
            f"{folder!r} ({error.strerror or error}). Pick a writable path."
        ) from error
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            f"{name}={os.fspath(path)!r}: the folder {folder!r} is not "
            "writable. Pick a writable path."
        )


def check_savable(name, path, variables):
    """Raises if some of `variables` are split across the processes of a
    multi-process job (multi-host `ModelParallel`): no process holds them
    whole, so none can write `path`. Called at `on_train_begin`."""
    split = split_across_processes(variables)
    if split:
        raise ValueError(
            f"{name}={os.fspath(path)!r}: {len(split)} variable(s) are split "
            f"across the processes of this job ({', '.join(split[:3])}"
            f"{', ...' if len(split) > 3 else ''}), so no process can write "
            f"them to one file. Drop `{name}` and save with a library that "
            "writes sharded arrays (e.g. Orbax), or split those variables "
            "only over the devices of each process."
        )
