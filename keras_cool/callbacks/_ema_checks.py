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
import os
import sys

import keras
import numpy as np

from keras_cool.callbacks._checks import check_savable
from keras_cool.callbacks._checks import check_writable
from keras_cool.callbacks._ema_profiles import SWA_SIGMA_REL

__all__ = [
    "CONFIG",
    "check_arguments",
    "check_best_weights",
    "check_number",
    "check_paths",
    "check_profile",
    "check_sigma_rel",
    "check_trainable",
    "running_callbacks",
]

WARMUPS = (None, "tfa", "power")
POLICIES = ("average", "copy", "ignore")
FINAL_WEIGHTS = ("raw", "ema")


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


def check_sigma_rel(sigma_rel):
    """`sigma_rel` as a tuple of floats, or None."""
    if sigma_rel is None:
        return None
    many = isinstance(sigma_rel, (list, tuple))
    values = list(sigma_rel) if many else [sigma_rel]
    if not values:
        raise ValueError("sigma_rel must not be empty: pass None or widths.")
    valid = f"in (0, {SWA_SIGMA_REL:.4f}] (e.g. 0.05; 1/sqrt(12): SWA)"
    return tuple(
        check_number(
            f"sigma_rel[{i}]" if many else "sigma_rel",
            value,
            valid,
            lambda s: 0 < s <= SWA_SIGMA_REL * (1 + 1e-12),
        )
        for i, value in enumerate(values)
    )


CONFIG = (
    "decay",
    "warmup",
    "warmup_gamma",
    "warmup_power",
    "start_step",
    "update_every",
    "non_trainable",
    "validate_on_ema",
    "swap_on_epoch",
    "final_weights",
    "state_path",
    "sigma_rel",
    "snapshot_every",
    "snapshot_dir",
)


# name -> (valid range, test, integer): the number arguments.
NUMBERS = {
    "decay": ("in [0, 1) (e.g. 0.999)", lambda d: 0 <= d < 1, False),
    "warmup_gamma": ("> 0", lambda g: g > 0, False),
    "warmup_power": ("> 0", lambda p: p > 0, False),
    "start_step": (">= 0", lambda s: s >= 0, True),
    "update_every": (">= 1", lambda n: n >= 1, True),
    "snapshot_every": (">= 1", lambda n: n >= 1, True),
}


def check_arguments(arguments):
    """The constructor's checks: `arguments` (a dict holding the names of
    `CONFIG`) as the callback's attributes, numbers as numbers."""
    a = {name: arguments[name] for name in CONFIG}
    for name, (valid, test, integer) in NUMBERS.items():
        if name != "snapshot_every" or a[name] is not None:
            a[name] = check_number(name, a[name], valid, test, integer)
    for name, choices in (
        ("warmup", WARMUPS),
        ("non_trainable", POLICIES),
        ("final_weights", FINAL_WEIGHTS),
    ):
        if a[name] not in choices:
            raise ValueError(
                f"{name} must be one of {choices}, got {a[name]!r}."
            )
    if a["state_path"] is not None:
        try:
            str(a["state_path"]).format(epoch=1)
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                "state_path may only use the field {epoch}, got "
                f"{a['state_path']!r} ({error!r})."
            ) from None
    a["sigma_rel"] = check_sigma_rel(a["sigma_rel"])
    if a["sigma_rel"] is not None and (
        a["decay"] != 0.999 or a["warmup"] is not None
    ):
        raise ValueError(
            "sigma_rel sets the decay of power-function profiles: pass "
            f"either sigma_rel or decay/warmup, got sigma_rel="
            f"{a['sigma_rel']}, decay={a['decay']}, warmup={a['warmup']!r}."
        )
    if (a["snapshot_every"] is None) != (a["snapshot_dir"] is None):
        raise ValueError(
            "snapshot_every and snapshot_dir go together: pass both "
            "(e.g. snapshot_every=1000, snapshot_dir='ema_snapshots') or "
            f"neither, got {a['snapshot_every']!r} and {a['snapshot_dir']!r}."
        )
    a["validate_on_ema"] = bool(a["validate_on_ema"])
    a["swap_on_epoch"] = bool(a["swap_on_epoch"])
    return a


def check_profile(profile, count):
    """`profile` if it is an index into `count` profiles, else a clear
    `ValueError`."""
    if isinstance(profile, bool) or profile not in range(count):
        raise ValueError(
            f"profile must be an index into the {count} profile(s) "
            f"(0 to {count - 1}), got {profile!r}."
        )
    return profile


def check_trainable(model, has_state):
    """Raises unless `model` has trainable weights to average
    (`has_state`: the EMA tracks some of its variables)."""
    if not has_state:
        if model.weights:
            raise ValueError(
                "ExponentialMovingAverage: the model has no trainable "
                "weights to average (it is frozen, model.trainable is "
                "False, and non_trainable='ignore'). Unfreeze the "
                "weights to train, or drop the callback."
            )
        raise ValueError(
            "ExponentialMovingAverage: the model has no weights at "
            "all, so there is nothing to average. Drop the callback, "
            "or build the model before fit if its layers create "
            "weights."
        )
    if not model.trainable_variables:
        raise ValueError(
            "ExponentialMovingAverage: the model has no trainable "
            "weights (it is frozen: model.trainable is False or every "
            "layer is), so training does not change what it would "
            "average. Unfreeze the weights, or drop the callback."
        )


def check_paths(state_path, snapshot_dir, model):
    """At `on_train_begin`: the state and snapshot files can be written."""
    paths = {"state_path": state_path and str(state_path).format(epoch=1)}
    if snapshot_dir is not None:
        paths["snapshot_dir"] = os.path.join(os.fspath(snapshot_dir), "x.npz")
    for name, path in paths.items():
        if path:
            check_writable(name, path)
            check_savable(name, path, model.weights)
