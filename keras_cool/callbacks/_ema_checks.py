"""Private: the ExponentialMovingAverage's argument checks, and its check
of the other callbacks of a `fit` that keep "the best weights".

A `ModelCheckpoint(save_best_only=True)` or an
`EarlyStopping(restore_best_weights=True)` keeps the weights the model
holds at its `on_epoch_end`, chosen by a `val_*` score. With the EMA, the
score is that of the EMA weights when `validate_on_ema=True`, and the
weights the model holds at epoch end are the EMA weights only for
callbacks listed after an EMA with `swap_on_epoch=True`. When the two
disagree, the kept weights are not those that were scored: `fit` is
refused at `on_train_begin`, with the arguments that make them agree.
"""

import math
import sys

import keras
import numpy as np

__all__ = ["check_best_weights", "check_number", "running_callbacks"]


def check_number(name, value, valid, test, integer=False):
    """`value` as a float (an int if `integer`), or a clear error naming
    `name` and the valid range `valid` (text): a `TypeError` for what is
    not a number (None, a string, a bool), a `ValueError` for a number
    outside `test`."""
    number = None
    if not isinstance(value, (bool, str, bytes)) and value is not None:
        try:
            if np.ndim(value) == 0:
                number = float(value)
        except (TypeError, ValueError):
            number = None
    if number is None:
        raise TypeError(
            f"{name} must be a number {valid}, got {value!r} "
            f"(type {type(value).__name__})."
        )
    if math.isnan(number) or not test(number):
        raise ValueError(f"{name} must be {valid}, got {value!r}.")
    if integer:
        if math.isinf(number) or number != int(number):
            raise ValueError(
                f"{name} must be an integer {valid}, got {value!r}."
            )
        return int(number)
    return number


def running_callbacks(callback):
    """The callbacks of the `fit`/`evaluate`/`predict` now calling
    `callback` (the `keras.callbacks.CallbackList` found up the stack), in
    list order; None when `callback` is not called by one."""
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.callbacks.CallbackList):
            listed = list(getattr(owner, "callbacks", None) or [])
            if any(c is callback for c in listed):
                return listed
        frame = frame.f_back
    return None


def _keeps_best(callback):
    """`"Name(...)"` if `callback` keeps the weights of its best epoch by a
    validation score, else None."""
    monitor = str(getattr(callback, "monitor", ""))
    if not monitor.startswith("val_"):
        return None
    if isinstance(callback, keras.callbacks.ModelCheckpoint):
        if callback.save_best_only and callback.save_freq == "epoch":
            return f"ModelCheckpoint(monitor={monitor!r}, save_best_only=True)"
    if isinstance(callback, keras.callbacks.EarlyStopping):
        if callback.restore_best_weights:
            return (
                f"EarlyStopping(monitor={monitor!r}, restore_best_weights=True)"
            )
    return None


def check_best_weights(ema, callbacks):
    """Raises a `ValueError` if a callback of `callbacks` (the running
    `fit`'s, in order) would keep other weights than those whose
    validation score chose them."""
    position = next(i for i, c in enumerate(callbacks) if c is ema)
    for i, callback in enumerate(callbacks):
        keeper = _keeps_best(callback)
        if keeper is None:
            continue
        name = type(callback).__name__
        holds_ema = ema.swap_on_epoch and i > position
        if ema.validate_on_ema == holds_ema:
            continue
        if ema.validate_on_ema and not ema.swap_on_epoch:
            problem = (
                "the validation scores are those of the EMA weights "
                "(validate_on_ema=True), but at epoch end the model holds "
                "the raw weights (swap_on_epoch=False)"
            )
            fix = (
                f"Pass ExponentialMovingAverage(swap_on_epoch=True), listed "
                f"before the {name}, to keep the EMA weights; or "
                "validate_on_ema=False to score and keep the raw weights."
            )
        elif ema.validate_on_ema:
            problem = (
                "the validation scores are those of the EMA weights "
                f"(validate_on_ema=True), but the {name} is listed before "
                "the ExponentialMovingAverage, so it sees the raw weights"
            )
            fix = (
                f"List the ExponentialMovingAverage before the {name}: "
                f"callbacks=[ema, {name.lower()}]."
            )
        else:
            problem = (
                "the validation scores are those of the raw weights "
                "(validate_on_ema=False), but at epoch end the model holds "
                "the EMA weights (swap_on_epoch=True)"
            )
            fix = (
                "Pass validate_on_ema=True to score and keep the EMA "
                f"weights; or list the {name} before the "
                "ExponentialMovingAverage to score and keep the raw weights."
            )
        raise ValueError(
            f"ExponentialMovingAverage: {keeper} would keep other weights "
            f"than the ones its {callback.monitor!r} scored: {problem}. "
            f"{fix}"
        )
