"""Private: the EMA's state files (`save_state`, snapshots) and their checks.

A state is one `.npz` file: `step` (the EMA's optimizer steps), the
shadows of the first profile as `shadow_<i>` and of profile `k >= 1` as
`shadow_<k>_<i>`, the tracked variables' `paths`, and, when it was saved
while the EMA weights were applied, the raw weights `raw_<i>`. Since
power-function profiles, it also holds `gammas` (one per profile, NaN for
a constant decay) and `start_step`, which post-hoc reconstruction reads.
A snapshot is a state written every `snapshot_every` steps to
`snapshot_dir/ema-<step>.npz`.
"""

import os
import re
import typing

import keras
import numpy as np
from keras import ops

from keras_cool._io import atomic_write
from keras_cool.callbacks._ema_profiles import coefficients
from keras_cool.callbacks._ema_profiles import gamma_of

__all__ = [
    "SnapshotClock",
    "State",
    "check_loaded",
    "is_float",
    "read_state",
    "snapshot_path",
    "snapshots",
    "synthesize",
    "write_state",
]

SNAPSHOT = re.compile(r"^ema-(\d+)\.npz$")


class State(typing.NamedTuple):
    step: int
    shadows: list  # one list of arrays per profile
    paths: typing.Optional[list]
    raws: typing.Optional[list]
    gammas: typing.Optional[list]  # None: an EMA state of one decay
    start_step: int


def is_float(dtype):
    return "float" in keras.backend.standardize_dtype(dtype)


def _savable(value, dtype):
    """`value` as a numpy array that `np.savez` keeps exactly: float
    dtypes numpy has no kind for (bfloat16) are widened to float32."""
    array = np.array(ops.convert_to_numpy(value))
    if is_float(dtype) and array.dtype.kind != "f":
        array = array.astype("float32")
    return array


def _key(profile, i):
    return f"shadow_{i}" if profile == 0 else f"shadow_{profile}_{i}"


def write_state(path, step, shadows, update, start_step, raws=None):
    """Writes a state atomically (see the module docstring): `shadows`
    (numpy arrays per profile) of the `EmaUpdate` `update`."""
    variables, profiles = update.variables, update.plan.profiles
    arrays = {"step": np.asarray(step, "int64")}
    arrays["averaged"] = np.asarray(update.averaged, bool)
    for k, profile_shadows in enumerate(shadows):
        for i, shadow in enumerate(profile_shadows):
            arrays[_key(k, i)] = np.array(shadow)
    if raws is not None:
        for i, (v, raw) in enumerate(zip(variables, raws)):
            arrays[f"raw_{i}"] = _savable(raw, v.dtype)
    arrays["paths"] = np.array([v.path for v in variables])
    gammas = [np.nan if p.gamma is None else p.gamma for p in profiles]
    arrays["gammas"] = np.asarray(gammas, "float64")
    arrays["start_step"] = np.asarray(start_step, "int64")
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return path


def read_state(path):
    """The `State` in a state file, or a clear error."""
    try:
        with np.load(path, allow_pickle=False) as data:
            count = len([k for k in data.files if re.match(r"shadow_\d+$", k)])
            gammas = None
            if "gammas" in data.files:
                gammas = [float(g) for g in data["gammas"]]
            shadows = [
                [data[_key(k, i)] for i in range(count)]
                for k in range(len(gammas or [None]))
            ]
            step = int(data["step"])
            start_step = 0
            if "start_step" in data.files:
                start_step = int(data["start_step"])
            paths = None
            if "paths" in data.files:
                paths = [str(p) for p in data["paths"]]
            raws = None
            if "raw_0" in data.files:
                raws = [data[f"raw_{i}"] for i in range(count)]
                for i, (raw, shadow) in enumerate(zip(raws, shadows[0])):
                    if raw.shape != shadow.shape:
                        raise ValueError(
                            f"raw_{i} has shape {raw.shape}, shadow_{i} "
                            f"{shadow.shape}"
                        )
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, AttributeError) as error:
        raise ValueError(
            f"load_state: {path!r} is not an EMA state written by "
            f"ExponentialMovingAverage.save_state (a .npz file with "
            f"'step' and 'shadow_<i>' arrays): {error}"
        ) from None
    return State(step, shadows, paths, raws, gammas, start_step)


class SnapshotClock:
    """When a snapshot is due, every `every` steps, read without a sync:
    at a batch's begin, Keras's `batch` is the steps its epoch has run;
    at an epoch's end, the caller gives the step. At the end of `fit` one
    more is written unless the last one is at that step (`last`)."""

    def __init__(self, every, step):
        self.every = every
        self.epoch_step = step
        self.written(step)  # `last`: the step of the last one written

    def due(self, batch, step=None):
        if step is not None:  # an epoch's end: the next one starts there
            self.epoch_step = step
        return self.epoch_step + (batch or 0) >= self.next

    def written(self, step):
        self.last = step
        self.next = (step // self.every + 1) * self.every


def snapshot_path(folder, step):
    return os.path.join(os.fspath(folder), f"ema-{int(step):010d}.npz")


def snapshots(folder):
    """`[(step, path)]` of the snapshots in `folder`, by step."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    found = [(SNAPSHOT.match(n), n) for n in names]
    return sorted(
        (int(m.group(1)), os.path.join(folder, n)) for m, n in found if m
    )


def _first_difference(saved, current):
    """` First difference: ...` between two lists of paths, or ""."""
    if saved is None:
        return ""
    for i, (a, b) in enumerate(zip(saved, current)):
        if a != b:
            return (
                f" First difference: entry {i} is {a!r} in the state, "
                f"{b!r} in the model."
            )
    return (
        f" The state's paths begin like the model's; it has {len(saved)}, "
        f"the model {len(current)}."
    )


def check_loaded(state, variables, profiles, non_trainable):
    """Checks a loaded `state` against the tracked `variables` and the
    callback's `profiles`.

    The saved variable paths name the variable in the errors. Paths that
    merely differ (layer names depend on what was built before) are
    accepted when the shapes match; the same paths in another order are
    refused, since each shadow would land on another variable.
    """
    saved = 1 if state.gammas is None else len(state.gammas)
    if saved != len(profiles):
        raise ValueError(
            f"The saved EMA state has {saved} profile(s), this "
            f"ExponentialMovingAverage {len(profiles)} "
            f"({', '.join(p.describe() for p in profiles)}). Load it into "
            "a callback made with the same decay or sigma_rel."
        )
    for saved_gamma, profile in zip(state.gammas or (), profiles):
        mine = np.nan if profile.gamma is None else profile.gamma
        if not np.isclose(saved_gamma, mine, rtol=1e-9, equal_nan=True):
            raise ValueError(
                f"The saved EMA state's profiles (gamma {state.gammas}) "
                f"are not this callback's "
                f"({', '.join(p.describe() for p in profiles)}). Load it "
                "into a callback made with the same decay or sigma_rel."
            )
    values, paths = state.shadows[0], state.paths
    names = [v.path for v in variables]
    if len(values) != len(variables):
        raise ValueError(
            f"The saved EMA state has {len(values)} shadow weights but "
            f"the model has {len(variables)} tracked variables "
            f"(non_trainable={non_trainable!r}). Load a state saved "
            "for the same model and the same non_trainable policy."
            + _first_difference(paths, names)
        )
    for i, (variable, value) in enumerate(zip(variables, values)):
        if tuple(value.shape) != tuple(variable.shape):
            saved = "" if paths is None else f" (saved for {paths[i]})"
            raise ValueError(
                f"The saved EMA state does not match the model: shadow "
                f"of shape {tuple(value.shape)}{saved} for variable "
                f"{variable.path} of shape {tuple(variable.shape)}."
            )
    if paths is not None and paths != names:
        if sorted(paths) == sorted(names):
            raise ValueError(
                "The saved EMA state tracks the model's variables in "
                "another order, so its shadows would land on the wrong "
                "variables." + _first_difference(paths, names)
            )


def synthesize(folder, sigma_rel, step=None):
    """Post-hoc EMA: `(arrays, paths, residual)`, the average of power
    profile `sigma_rel` at the last snapshot of `folder` (at most `step`),
    mixed from the snapshots' power-function shadows by least squares
    (`_ema_profiles.coefficients`). Shadows that are copied, not averaged
    (integer states), come from that last snapshot."""
    found = snapshots(folder)
    if step is not None:
        found = [(s, p) for s, p in found if s <= step]
    if not found:
        raise ValueError(
            f"No EMA snapshots (ema-<step>.npz) in {os.fspath(folder)!r}"
            + ("" if step is None else f" at step <= {step}")
            + ": train with ExponentialMovingAverage(sigma_rel=..., "
            "snapshot_every=N, snapshot_dir=...) first."
        )
    entries = []  # (time, gamma, path, profile)
    for s, path in found:
        state = read_state(path)
        for k, gamma in enumerate(state.gammas or [np.nan]):
            if not np.isnan(gamma) and s - state.start_step > 0:
                entries.append((s - state.start_step, gamma, path, k))
    last = found[-1][1]
    if not entries:
        raise ValueError(
            f"The snapshots in {os.fspath(folder)!r} hold no power-function "
            "profile after start_step: post-hoc EMA needs "
            "ExponentialMovingAverage(sigma_rel=...)."
        )
    time = found[-1][0] - read_state(last).start_step
    x, residual = coefficients(
        [e[0] for e in entries],
        [e[1] for e in entries],
        time,
        gamma_of(sigma_rel),
    )
    with np.load(last, allow_pickle=False) as data:
        final = read_state(last)
        averaged = [is_float(s.dtype) for s in final.shadows[0]]
        if "averaged" in data.files:
            averaged = [bool(a) for a in data["averaged"]]
    out = [
        np.zeros(s.shape, "float64") if a else s
        for s, a in zip(final.shadows[0], averaged)
    ]
    by_path = {}
    for coefficient, (_, _, path, k) in zip(x, entries):
        by_path.setdefault(path, []).append((k, coefficient))
    for path, mix in by_path.items():
        shadows = read_state(path).shadows
        for k, coefficient in mix:
            for i, a in enumerate(averaged):
                if a:
                    out[i] += coefficient * shadows[k][i]
    out = [o.astype("float32") if a else o for o, a in zip(out, averaged)]
    return out, final.paths, residual
