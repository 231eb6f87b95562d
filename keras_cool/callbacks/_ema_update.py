"""Private: the EMA's update, a member of the train-step hook.

`EmaUpdate` holds the step counter and one float32 shadow per tracked
variable and per profile, and runs every profile's update inside the
compiled train step, right after the optimizer step (the protocol of
`_train_step_hook`): `update_in_place` on TensorFlow and torch (one fused
in-place pass per shadow, `_backend.make_ema_average`), `advance` on JAX
(a pure function of `[step, *shadows]`). Several profiles share the step
counter, the decay plan and the weights read: a second profile costs its
shadow writes, not a second update.

JAX: averaged shadows smaller than `_PACK_BELOW` ride through the train
step as one flat array per profile, updated in one fused pass: XLA on a
CPU runs one fusion per array, and on small variables that launch is most
of the EMA's cost. With several profiles (and no `keras.distribution`),
each larger state array holds every profile's shadow on a last axis, so
that one fused pass reads each weight once for all of them (the packed
flat arrays stay one per profile: stacked, they were slower).
"""

import keras
import numpy as np
from keras import ops

from keras_cool._backend import make_ema_average
from keras_cool.callbacks._ema_state import check_loaded
from keras_cool.callbacks._ema_state import is_float

__all__ = ["EmaUpdate", "build_update", "select_variables"]

_PACK_BELOW = 65536
_FLOOR = 1e-30  # the least decay of a power profile on TensorFlow / torch


def _packing(shadows, averaged):
    """JAX: the indices of the shadows to keep as one flat array (none
    under a `keras.distribution`, where each shadow has its own layout)."""
    if keras.backend.backend() != "jax":
        return ()
    if keras.distribution.distribution() is not None:
        return ()
    small = tuple(
        i
        for i, (shadow, a) in enumerate(zip(shadows, averaged))
        if a and int(np.prod(shadow.shape)) < _PACK_BELOW
    )
    return small if len(small) > 1 else ()


def _pack(arrays, packed):
    """`arrays` (one per shadow) -> `[flat, *the others]` (`packed`: the
    indices in `flat`, in order); unchanged without `packed`."""
    if not packed:
        return list(arrays)
    flat = ops.concatenate([ops.reshape(arrays[i], (-1,)) for i in packed])
    return [flat] + _unpacked(arrays, packed)


def _unpacked(items, packed):
    """The `items` (one per shadow) not in `packed`, in order."""
    chosen = set(packed)
    return [item for i, item in enumerate(items) if i not in chosen]


def _unpack(arrays, packed, shapes):
    """The inverse of `_pack`: one array per shadow, of `shapes`."""
    if not packed:
        return list(arrays)
    out, offset = [None] * len(shapes), 0
    for i in packed:
        size = int(np.prod(shapes[i]))
        out[i] = ops.reshape(arrays[0][offset : offset + size], shapes[i])
        offset += size
    rest = iter(arrays[1:])
    return [next(rest) if a is None else a for a in out]


def _layout_of(variable):
    """`{"layout": ...}` of `variable` under a JAX `keras.distribution`
    (a shadow has its weight's layout: sharded weight, sharded shadow)."""
    if keras.backend.backend() != "jax":
        return {}
    distribution = keras.distribution.distribution()
    if distribution is None:
        return {}
    return {"layout": distribution.get_variable_layout(variable)}


def _shadow_dtype(variable, averaged):
    return "float32" if averaged else variable.dtype


def select_variables(model, non_trainable):
    """The tracked variables in `model.variables` order (whose restriction
    to `model.weights` is `model.weights` order), and per variable whether
    its shadow is averaged (else copied)."""
    trainable = {id(v) for v in model.trainable_variables}
    chosen = list(model.trainable_variables)
    if non_trainable != "ignore":
        chosen += model.non_trainable_variables
    by_id = {id(v): v for v in chosen}
    variables = []
    for v in list(model.variables) + chosen:
        if by_id.pop(id(v), None) is not None:
            variables.append(v)
    averaged = [
        is_float(v.dtype) and (id(v) in trainable or non_trainable == "average")
        for v in variables
    ]
    return variables, averaged


def build_update(model, non_trainable, plan, current=None, state=None):
    """The `EmaUpdate` of `model`'s tracked variables (None if it has
    none), from a loaded `state` if given (checked against the model);
    `current` is returned if it still fits the model."""
    variables, averaged = select_variables(model, non_trainable)
    if current is not None:
        if {id(v) for v in variables} != {id(v) for v in current.variables}:
            raise ValueError(
                "The model's variables changed since this "
                "ExponentialMovingAverage started tracking it (e.g. a "
                "layer was added or made (non-)trainable). Create a new "
                "callback, or load a saved state into a fresh one."
            )
        return current
    if not variables:
        return None
    step, values = 0, None
    if state is not None:
        check_loaded(state, variables, plan.profiles, non_trainable)
        step, values = state.step, state.shadows
    return EmaUpdate(variables, averaged, plan, step, values)


class EmaUpdate:
    """The shadows of every profile, and their update in the train step.

    Args:
        variables: the tracked model variables.
        averaged: per variable, whether its shadow is averaged (else
            copied at each update).
        plan: an `_ema_profiles.Plan` (the profiles and their decays).
        step: the EMA's optimizer steps so far.
        values: one list of arrays per profile (a loaded state), or None
            to start from the variables' values.
    """

    def __init__(self, variables, averaged, plan, step=0, values=None):
        self.variables = list(variables)
        self.averaged = list(averaged)
        self.plan = plan
        count = len(plan.profiles)
        if values is None:
            values = [[v.value for v in self.variables]] * count
        self.shadows = [
            [
                keras.Variable(
                    ops.copy(ops.cast(value, _shadow_dtype(v, a))),
                    dtype=_shadow_dtype(v, a),
                    trainable=False,
                    name=f"ema_{i}" if k == 0 else f"ema_{k}_{i}",
                    **_layout_of(v),
                )
                for i, (v, a, value) in enumerate(
                    zip(self.variables, self.averaged, profile_values)
                )
            ]
            for k, profile_values in enumerate(values)
        ]
        self.step = keras.Variable(
            step, dtype="int32", trainable=False, name="ema_step"
        )
        self.packed = _packing(self.shadows[0], self.averaged)
        # JAX, several profiles, no `keras.distribution`: stacked state.
        self.stacked = len(self.shadows) > 1 and (
            keras.backend.backend() == "jax"
            and keras.distribution.distribution() is None
        )
        self.live = None  # JAX: latest (step, *shadows) arrays during fit
        self.average = None  # TF/torch: the fused in-place update
        self.pairs = None  # TF/torch: per profile, (averaged, copied)

    # -- reading and writing the state -------------------------------------
    def _split_live(self):
        """JAX: `(step, [shadow arrays per profile])` of the live state."""
        step, *arrays = self.live
        shapes = [s.shape for s in self.shadows[0]]
        count = len(self.shadows)
        if self.stacked:  # flat arrays per profile, then stacked slots
            flats = count if self.packed else 0
            slots = [
                arrays[k : k + 1 if flats else 0]
                + [a[..., k] for a in arrays[flats:]]
                for k in range(count)
            ]
        else:
            size = len(arrays) // count
            slots = [arrays[k * size : (k + 1) * size] for k in range(count)]
        return step, [_unpack(a, self.packed, shapes) for a in slots]

    def sync(self):
        """JAX: write the live state arrays back into the variables."""
        if self.live is not None:
            step, values = self._split_live()
            self.assign(step, values)

    def assign(self, step, values):
        """Sets the step and every profile's shadows."""
        self.live = None
        self.step.assign(step)
        for shadows, profile_values in zip(self.shadows, values):
            for shadow, value in zip(shadows, profile_values):
                shadow.assign(value)

    def step_count(self):
        """The step as an int (on JAX, read off the live state)."""
        step = self.step.value if self.live is None else self.live[0]
        return int(np.asarray(ops.convert_to_numpy(step)))

    def tensors(self, profile):
        """The shadows of `profile`, as tensors (live ones on JAX)."""
        if self.live is None:
            return [s.value for s in self.shadows[profile]]
        return self._split_live()[1][profile]

    def numpy(self, profile):
        """The shadows of `profile`, as numpy arrays."""
        return [
            np.array(ops.convert_to_numpy(v)) for v in self.tensors(profile)
        ]

    def arrays(self):
        """`(step, [[numpy shadow per variable] per profile])`, without
        writing the live state back (a snapshot during `fit`)."""
        if self.live is None:
            step = self.step.value
            values = [[s.value for s in shadows] for shadows in self.shadows]
        else:
            step, values = self._split_live()
        return int(np.asarray(ops.convert_to_numpy(step))), [
            [np.array(ops.convert_to_numpy(v)) for v in profile_values]
            for profile_values in values
        ]

    def prepare(self):
        """TensorFlow and torch: the fused update and the shadow pairs."""
        if self.pairs is not None or keras.backend.backend() == "jax":
            return
        self.average = make_ema_average()
        self.pairs = []
        for shadows in self.shadows:
            pairs = list(zip(self.averaged, shadows, self.variables))
            self.pairs.append(
                (
                    [s for a, s, _ in pairs if a],
                    [(s, v) for a, s, v in pairs if not a],
                )
            )

    # -- the train-step hook protocol (see `_train_step_hook`) -------------
    def update_in_place(self):
        """TensorFlow and torch: one update, assigned in place (fused)."""
        step = self.step.value + 1
        decays, due = self.plan.at(step)
        # After the optimizer step no gradient is being recorded.
        weights = [
            ops.cast(v.value, "float32")
            for v, a in zip(self.variables, self.averaged)
            if a
        ]
        for profile, d, (shadows, copied) in zip(
            self.plan.profiles, decays, self.pairs
        ):
            positive = self.plan.positive(profile)
            if profile.gamma is not None:
                # d = 0 only at the first update: a floor keeps TensorFlow
                # on its one kernel (no `tf.cond` per profile); the copy is
                # then exact to within a rounding step.
                d, positive = ops.maximum(d, _FLOOR), True
            if due is not None:
                d = ops.where(due, d, ops.ones_like(d))  # d = 1: unchanged
            self.average(shadows, weights, d, positive=positive)
            for shadow, variable in copied:
                weight = ops.stop_gradient(variable.value)
                if due is not None:
                    weight = ops.where(due, weight, shadow.value)
                shadow.assign(ops.copy(weight))
        self.step.assign(step)

    def hook_variables(self):
        """JAX: the tracked variables, whose new values `advance` reads."""
        return list(self.variables)

    def hook_state(self):
        """JAX: `[step, *shadows]`, the live arrays if training ran. Small
        shadows are packed into one flat array; with several profiles,
        each shadow's profiles are stacked on a last axis (one fused pass
        reads each weight once for all of them)."""
        if self.live is not None:
            return self.live
        profiles = [
            _pack([ops.copy(s.value) for s in shadows], self.packed)
            for shadows in self.shadows
        ]
        if self.stacked:  # the packed flat arrays are faster apart
            flats = [p[0] for p in profiles] if self.packed else []
            rest = [p[1:] if self.packed else p for p in profiles]
            stacked = [ops.stack(slot, axis=-1) for slot in zip(*rest)]
            profiles = [flats + stacked]
        return [ops.copy(self.step.value)] + [a for p in profiles for a in p]

    def advance(self, state, weights):
        """JAX: the pure update of the `hook_state` arrays."""
        step, shadows = state[0] + 1, state[1:]
        if self.stacked:  # one (profiles,) vector
            decays, due = self.plan.decays(step)
        else:
            decays, due = self.plan.at(step)
        packed = self.packed
        weights = [ops.stop_gradient(w) for w in weights]
        averaged = list(self.averaged)
        for i, a in enumerate(averaged):
            if a:
                weights[i] = ops.cast(weights[i], "float32")
        weights = _pack(weights, packed)
        if packed:  # the flat array holds averaged shadows only
            averaged = [True] + _unpacked(averaged, packed)
        size = len(weights)

        def one(d, shadow, weight, a):
            return d * shadow + (1.0 - d) * weight if a else ops.copy(weight)

        def update():
            if self.stacked:
                count = len(self.shadows)
                flats = count if packed else 0
                new = [
                    one(decays[k], shadows[k], weights[0], True)
                    for k in range(flats)
                ]
                start = 1 if packed else 0
                for a, shadow, weight in zip(
                    averaged[start:], shadows[flats:], weights[start:]
                ):
                    weight = ops.expand_dims(weight, -1)  # profiles last
                    if a:
                        new.append(one(decays, shadow, weight, a))
                    else:
                        new.append(ops.repeat(weight, count, -1))
                return new
            return [
                one(d, shadow, weight, a)
                for k, d in enumerate(decays)
                for a, shadow, weight in zip(
                    averaged, shadows[k * size : (k + 1) * size], weights
                )
            ]

        if due is None:
            return [step] + update()
        new = ops.cond(due, update, lambda: [ops.copy(s) for s in shadows])
        return [step] + list(new)

    def receive_state(self, state):
        """JAX: keep the live arrays; `sync` writes them back on demand."""
        self.live = list(state)
