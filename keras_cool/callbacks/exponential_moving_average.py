"""Exponential moving average (EMA) of a model's weights, as a callback.

Where the update runs on each backend, and why this is a callback with a
train-step hook, is described in the docs' "How it works: EMA" page.
"""

import contextlib

import keras
import numpy as np
from keras import ops

from keras_cool._backend import make_ema_average
from keras_cool._io import atomic_write
from keras_cool.callbacks import _exit_guard
from keras_cool.callbacks import _train_step_hook
from keras_cool.callbacks._checks import check_savable
from keras_cool.callbacks._checks import check_writable
from keras_cool.callbacks._ema_checks import check_best_weights
from keras_cool.callbacks._ema_checks import check_number
from keras_cool.callbacks._ema_checks import running_callbacks

__all__ = ["ExponentialMovingAverage"]

WARMUPS = (None, "tfa", "power")
POLICIES = ("average", "copy", "ignore")
FINAL_WEIGHTS = ("raw", "ema")


# JAX: averaged shadows smaller than this ride through the train step as one
# flat array, updated in one fused pass. XLA on a CPU runs one fusion per
# array, and on small variables that launch is most of the EMA's cost.
_PACK_BELOW = 65536


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


def _is_float(dtype):
    return "float" in keras.backend.standardize_dtype(dtype)


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


def _layout_of(variable):
    """`{"layout": ...}` of `variable` under a JAX `keras.distribution`
    (a shadow has its weight's layout: sharded weight, sharded shadow)."""
    if keras.backend.backend() != "jax":
        return {}
    distribution = keras.distribution.distribution()
    if distribution is None:
        return {}
    return {"layout": distribution.get_variable_layout(variable)}


def _read_state(path):
    """`(step, shadows, paths, raws)` from a `save_state` file, or a clear
    error; `raws` (the raw weights, saved while the EMA weights were
    applied) is None when the file has none."""
    try:
        with np.load(path, allow_pickle=False) as data:
            count = len([k for k in data.files if k.startswith("shadow_")])
            shadows = [data[f"shadow_{i}"] for i in range(count)]
            step = int(data["step"])
            paths = None
            if "paths" in data.files:
                paths = [str(p) for p in data["paths"]]
            raws = None
            if "raw_0" in data.files:
                raws = [data[f"raw_{i}"] for i in range(count)]
                for i, (raw, shadow) in enumerate(zip(raws, shadows)):
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
    return step, shadows, paths, raws


def _savable(value, dtype):
    """`value` as a numpy array that `np.savez` keeps exactly: float
    dtypes numpy has no kind for (bfloat16) are widened to float32."""
    array = np.array(ops.convert_to_numpy(value))
    if _is_float(dtype) and array.dtype.kind != "f":
        array = array.astype("float32")
    return array


def _shadow_dtype(variable, averaged):
    return "float32" if averaged else variable.dtype


@keras.saving.register_keras_serializable(package="keras_cool")
class ExponentialMovingAverage(keras.callbacks.Callback):
    """Keep an exponential moving average of the weights during `fit`.

    Works with any optimizer and with an already compiled model: no
    `use_ema=True` is needed. After every optimizer step (or every
    `update_every` steps) each shadow weight is updated inside the compiled
    train step as `shadow = d * shadow + (1 - d) * weight`. Training always
    continues on the raw weights; the EMA weights are swapped in for
    validation (optional), on request, and at the end of `fit` if asked.

    Decay schedule, with `t = step - start_step` (optimizer steps):
    `d = 0` while `t <= 0` (the shadows copy the weights), then
    `d = decay` (`warmup=None`), `d = min(decay, (1 + t) / (10 + t))`
    (`warmup="tfa"`, TF Addons' `dynamic_decay`), or
    `d = min(decay, 1 - (1 + t / warmup_gamma) ** -warmup_power)`
    (`warmup="power"`, timm's `ModelEmaV3` warmup). The shadows start as a
    copy of the weights when training starts; they are float32 whatever the
    variable dtype (mixed precision included).

    Swapping copies values: `reset_old_weights()` writes back the exact raw
    values saved by `apply_ema_weights()` (bit-identical).

    Checkpoints: a `keras.callbacks.ModelCheckpoint` listed after this
    callback saves the EMA weights with `swap_on_epoch=True`, the raw
    weights otherwise. Either resumes exactly with `state_path`:
    `model = keras.models.load_model(checkpoint)`, `ema.load_state(state)`
    (a state saved while the EMA weights were in the model also holds the
    raw weights, and puts them back), then `fit(..., initial_epoch=k)`.
    A `ModelCheckpoint(save_best_only=True)` or an
    `EarlyStopping(restore_best_weights=True)` that monitors a `val_*`
    score must keep the weights that were scored: with
    `validate_on_ema=True` (the default), pass `swap_on_epoch=True` and
    list this callback first (it keeps the EMA weights); with
    `validate_on_ema=False`, it keeps the raw weights (with
    `swap_on_epoch=True`, list it before this callback). Other
    combinations raise a `ValueError` at `on_train_begin`.

    Args:
        decay: float in [0, 1), the EMA decay (momentum). Defaults to
            `0.999`.
        warmup: `None`, `"tfa"` or `"power"` (see above). Defaults to
            `None`.
        warmup_gamma: float > 0, timm's `warmup_gamma` (`"power"` only).
            Defaults to `1.0`.
        warmup_power: float > 0, timm's `warmup_power` (`"power"` only);
            2/3 reaches 0.999 after about 31.6K steps, 3/4 after 10K.
            Defaults to `2 / 3`.
        start_step: int >= 0; the shadows copy the weights until this many
            optimizer steps have run, then averaging starts. Defaults to
            `0`.
        update_every: int >= 1; update the average every N optimizer steps
            (the decay is applied per update). Defaults to `1`.
        non_trainable: what to do with non-trainable variables.
            `"average"` (like timm): float ones (BatchNorm moving
            mean/variance) are averaged, others (integer counters, seed
            states) are copied. `"copy"`: all are copied at each update.
            `"ignore"`: they are not tracked, and swapping leaves them
            alone. Defaults to `"average"`.
        validate_on_ema: bool; if True, validation during `fit`, and
            `evaluate`/`predict` called with this callback, run on the
            EMA weights; the raw weights are restored afterwards. Defaults
            to `True`.
        swap_on_epoch: bool; if True, the EMA weights are in the model from
            this callback's `on_epoch_end` to the next epoch's start, so
            callbacks listed after it (`ModelCheckpoint`, a callback that
            calls `predict`) see the EMA weights. Defaults to `False`.
        final_weights: `"raw"` or `"ema"`: what the model holds when `fit`
            returns. With `"ema"`, `reset_old_weights()` brings the raw
            weights back, and the next `fit` starts from them. Defaults to
            `"raw"`.
        state_path: optional file name (may contain `{epoch}`); if set, the
            EMA state is saved there (atomically) at every epoch end, for
            resuming together with a `ModelCheckpoint` (see above).
            Defaults to `None`.
        **kwargs: passed to `keras.callbacks.Callback`.

    Example:

    ```python
    x, y = np.random.rand(64, 4), np.random.rand(64, 1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    ema = keras_cool.callbacks.ExponentialMovingAverage(decay=0.9)
    model.fit(x, y, validation_split=0.25, callbacks=[ema], verbose=0)
    with ema.swapped_weights():
        model.evaluate(x, y, verbose=0)  # on the EMA weights
    ema.save_ema_model("ema_model.keras")
    ema.save_state("ema_state.npz")  # to resume: ema.load_state(...), fit
    ```

    Reference:
        Polyak & Juditsky 1992; Su Jianlin, "让Keras更酷一些!" (2019);
        `tfa.optimizers.MovingAverage`; timm `ModelEmaV3`.
    """

    def __init__(
        self,
        decay=0.999,
        warmup=None,
        warmup_gamma=1.0,
        warmup_power=2.0 / 3.0,
        start_step=0,
        update_every=1,
        non_trainable="average",
        validate_on_ema=True,
        swap_on_epoch=False,
        final_weights="raw",
        state_path=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        decay = check_number(
            "decay", decay, "in [0, 1) (e.g. 0.999)", lambda d: 0 <= d < 1
        )
        if warmup not in WARMUPS:
            raise ValueError(
                f"warmup must be one of {WARMUPS}, got {warmup!r}."
            )
        warmup_gamma = check_number(
            "warmup_gamma", warmup_gamma, "> 0", lambda g: g > 0
        )
        warmup_power = check_number(
            "warmup_power", warmup_power, "> 0", lambda p: p > 0
        )
        start_step = check_number(
            "start_step", start_step, ">= 0", lambda s: s >= 0, integer=True
        )
        update_every = check_number(
            "update_every", update_every, ">= 1", lambda n: n >= 1, integer=True
        )
        if non_trainable not in POLICIES:
            raise ValueError(
                f"non_trainable must be one of {POLICIES}, got "
                f"{non_trainable!r}."
            )
        if final_weights not in FINAL_WEIGHTS:
            raise ValueError(
                f"final_weights must be one of {FINAL_WEIGHTS}, got "
                f"{final_weights!r}."
            )
        if state_path is not None:
            try:
                str(state_path).format(epoch=1)
            except (KeyError, IndexError, ValueError) as error:
                raise ValueError(
                    "state_path may only use the field {epoch}, got "
                    f"{state_path!r} ({error!r})."
                ) from None
        self.decay = float(decay)
        self.warmup = warmup
        self.warmup_gamma = float(warmup_gamma)
        self.warmup_power = float(warmup_power)
        self.start_step = int(start_step)
        self.update_every = int(update_every)
        self.non_trainable = non_trainable
        self.validate_on_ema = bool(validate_on_ema)
        self.swap_on_epoch = bool(swap_on_epoch)
        self.final_weights = final_weights
        self.state_path = state_path
        self._variables = None  # model variables, in shadow order
        self._averaged = None  # per variable: average (True) or copy
        self._shadows = None  # keras.Variables: float32 or copy dtype
        self._step = None  # keras.Variable, int32: optimizer steps seen
        self._pending_state = None  # arrays from load_state before init
        self._live = None  # JAX: latest (step, *shadows) arrays during fit
        self._backup = None  # raw values while the EMA weights are applied
        self._auto_swapped = False  # applied by this callback's hooks
        self._installed = None  # the model whose train step we hook
        self._eval_swapped = False  # applied by on_test/predict_begin
        self._average = None  # TF/torch: the fused in-place update
        self._pairs = None  # TF/torch: (shadow, variable) per policy
        self._packed = ()  # JAX: shadows carried as one flat array

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------
    @property
    def step(self):
        """Optimizer steps seen by the EMA (an int), 0 before training."""
        if self._step is None:
            return 0
        self._sync()
        return int(np.asarray(self._step.numpy()))

    @property
    def applied(self):
        """True while the EMA weights are in the model."""
        return self._backup is not None

    def ema_weights(self):
        """The shadow weights as numpy arrays, one per tracked variable, in
        `model.weights` order (see `tracked_variables`).

        When the tracked variables are `model.weights` (no RNG seed
        states, `non_trainable` not `"ignore"`),
        `model.set_weights(ema.ema_weights())` puts the EMA weights in
        the model, each on its own variable.
        """
        self._require_state("read the EMA weights")
        self._sync()
        return [np.array(s.numpy()) for s in self._shadows]

    def tracked_variables(self):
        """The model variables that have a shadow, in `model.variables`
        order (that of `model.weights`, with RNG seed states where
        `model.variables` has them); the shadows, `ema_weights()` and
        the arrays of `save_state` follow this order."""
        self._require_state("list the tracked variables")
        return list(self._variables)

    def apply_ema_weights(self):
        """Write the EMA weights into the model, keeping the raw weights.

        Raises:
            RuntimeError: if there is no EMA yet, or the EMA weights are
                already applied (call `reset_old_weights()` first).
        """
        self._require_state("apply the EMA weights")
        if self._backup is not None:
            raise RuntimeError(
                "The EMA weights are already applied; applying twice would "
                "lose the raw weights. Call reset_old_weights() first."
            )
        self._sync_model()
        self._sync()
        self._backup = [
            ops.copy(ops.stop_gradient(v.value)) for v in self._variables
        ]
        for variable, shadow in zip(self._variables, self._shadows):
            value = ops.cast(shadow.value, variable.dtype)
            variable.assign(ops.copy(value))

    def reset_old_weights(self):
        """Restore the raw weights saved by `apply_ema_weights()` (a copy,
        bit-exact).

        Raises:
            RuntimeError: if the EMA weights are not applied.
        """
        if self._backup is None:
            raise RuntimeError(
                "reset_old_weights() called but the EMA weights are not "
                "applied: there are no raw weights to restore. Call "
                "apply_ema_weights() first."
            )
        self._sync_model()
        for variable, value in zip(self._variables, self._backup):
            variable.assign(value)
        self._backup = None
        self._auto_swapped = False

    @contextlib.contextmanager
    def _swapped(self):
        if self.applied:  # Nested, or `swap_on_epoch=True` at epoch end.
            yield self
            return
        self.apply_ema_weights()
        try:
            yield self
        finally:
            self.reset_old_weights()

    def swapped_weights(self):
        """A context manager: EMA weights inside, raw weights restored
        bit-exactly on exit (also on exceptions).

        Where the EMA weights are in the model already (inside another
        `swapped_weights()`, or at epoch end with `swap_on_epoch=True`),
        it changes nothing, so `Evaluator(weights_context=...)` works with
        either setting. For instance
        `with ema.swapped_weights(): model.evaluate(x, y)`.
        """
        return self._swapped()

    def save_ema_model(self, filepath, **kwargs):
        """Save the model holding the EMA weights (for deployment) with
        `model.save(filepath, **kwargs)`; the raw weights are restored."""
        self._require_state("save the EMA model")
        if self.applied:
            self.model.save(filepath, **kwargs)
            return
        with self.swapped_weights():
            self.model.save(filepath, **kwargs)

    def save_state(self, path):
        """Save the EMA state (step and shadow weights) atomically to a
        `.npz` file, for `load_state` when resuming.

        While the EMA weights are applied (`swap_on_epoch=True` at epoch
        end, inside `swapped_weights()`, after `final_weights="ema"`), the
        model holds no raw weights, so a checkpoint of it holds the EMA;
        the state then also holds the raw weights, and `load_state` puts
        them back.
        """
        self._require_state("save the EMA state")
        self._sync()
        arrays = {"step": np.asarray(self._step.numpy(), "int64")}
        for i, shadow in enumerate(self._shadows):
            arrays[f"shadow_{i}"] = np.array(shadow.numpy())
        if self._backup is not None:
            for i, (v, raw) in enumerate(zip(self._variables, self._backup)):
                arrays[f"raw_{i}"] = _savable(raw, v.dtype)
        arrays["paths"] = np.array([v.path for v in self._variables])
        atomic_write(path, lambda f: np.savez(f, **arrays))
        return path

    def load_state(self, path):
        """Load a state written by `save_state`.

        Without a model yet, the state is kept and used (and checked against
        the model) when `fit`, `evaluate` or `predict` starts with this
        callback; call `set_model(model)` first to use it right away, e.g.
        `ema.set_model(model); ema.load_state(p); ema.save_ema_model(f)`.

        A state saved while the EMA weights were applied brings that back:
        the EMA weights go into the model and its raw weights become the
        ones `reset_old_weights()` restores, and `fit` trains on (it
        restores them at `on_train_begin`). So a checkpoint that holds the
        EMA weights (`swap_on_epoch=True`) resumes exactly.
        """
        step, shadows, paths, raws = _read_state(path)
        if self._shadows is None:
            self._pending_state = (step, shadows, paths, raws)
            if self._model is not None:
                self._ensure_state(self._model)
            return
        self._check_loaded(shadows, paths, self._variables)
        self._sync()
        self._step.assign(step)
        for shadow, value in zip(self._shadows, shadows):
            shadow.assign(value)
        if raws is not None:
            self._restore_applied(raws)

    # ------------------------------------------------------------------
    # Callback hooks
    # ------------------------------------------------------------------
    def set_model(self, model):
        if self._model is not None and model is not self._model:
            if self._shadows is not None:
                raise ValueError(
                    "This ExponentialMovingAverage already tracks another "
                    "model; create one callback per model."
                )
        super().set_model(model)
        # Keras skips on_*_end when fit/evaluate/predict raise: undo our
        # swaps when the call ends, however it ends.
        _exit_guard.install(model)

    def on_train_begin(self, logs=None):
        model = self.model
        callbacks = running_callbacks(self)
        if callbacks is not None:
            check_best_weights(self, callbacks)
        if self.state_path:
            path = str(self.state_path).format(epoch=1)
            check_writable("state_path", path)
            check_savable("state_path", path, model.weights)
        if self._backup is not None:
            # Training always continues on the raw weights.
            self.reset_old_weights()
        self._ensure_state(model)
        if self._backup is not None:  # applied by a loaded state
            self.reset_old_weights()
        self._install(model)

    def on_train_end(self, logs=None):
        self._sync_model()
        if self._installed is not None:
            _train_step_hook.deactivate(self._installed, self)
        self._sync()
        if self._auto_swapped:
            self.reset_old_weights()
        if self.final_weights == "ema" and self._backup is None:
            self.apply_ema_weights()

    def on_epoch_begin(self, epoch, logs=None):
        if self._auto_swapped:
            self.reset_old_weights()
            _exit_guard.cancel(self._model, self._undo_epoch_swap)

    def on_epoch_end(self, epoch, logs=None):
        self._sync_model()
        if self.swap_on_epoch and self._backup is None:
            _exit_guard.on_exit(self._model, self._undo_epoch_swap)
            self.apply_ema_weights()
            self._auto_swapped = True
        if self.state_path:
            # After the swap: the state then holds the raw weights that a
            # checkpoint listed after this callback does not.
            self.save_state(str(self.state_path).format(epoch=epoch + 1))

    def on_test_begin(self, logs=None):
        self._auto_apply()

    def on_test_end(self, logs=None):
        self._auto_reset()

    def on_predict_begin(self, logs=None):
        self._auto_apply()

    def on_predict_end(self, logs=None):
        self._auto_reset()

    def get_config(self):
        return {
            "decay": self.decay,
            "warmup": self.warmup,
            "warmup_gamma": self.warmup_gamma,
            "warmup_power": self.warmup_power,
            "start_step": self.start_step,
            "update_every": self.update_every,
            "non_trainable": self.non_trainable,
            "validate_on_ema": self.validate_on_ema,
            "swap_on_epoch": self.swap_on_epoch,
            "final_weights": self.final_weights,
            "state_path": self.state_path,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------------
    # Internals
    # ------------------------------------------------------------------
    def _auto_apply(self):
        if self._pending_state is not None and self._model is not None:
            self._ensure_state(self._model)
        if self.validate_on_ema and self._shadows is not None:
            if self._backup is None:
                _exit_guard.on_exit(self._model, self._auto_reset)
                self._eval_swapped = True
                self.apply_ema_weights()
                return
        self._eval_swapped = False

    def _undo_epoch_swap(self):
        if self._auto_swapped and self._backup is not None:
            self.reset_old_weights()

    def _auto_reset(self):
        if self._eval_swapped:
            self._eval_swapped = False
            if self._backup is not None:
                self.reset_old_weights()

    def _require_state(self, what):
        if self._shadows is None and self._pending_state is not None:
            if self._model is not None:
                self._ensure_state(self._model)
        if self._shadows is None:
            raise RuntimeError(
                f"Cannot {what}: there is no EMA yet. Train with this "
                "callback (model.fit(..., callbacks=[ema])) or call "
                "load_state() and fit first."
            )

    def _sync_model(self):
        # On JAX, reading `self.model` attaches the trainer state to the
        # model variables (a no-op elsewhere).
        if self._model is not None:
            self.model  # noqa: B018

    def _sync(self):
        """JAX: write the live state arrays back into our variables."""
        if self._live is not None:
            step, *arrays = self._live
            self._step.assign(step)
            shapes = [s.shape for s in self._shadows]
            values = _unpack(arrays, self._packed, shapes)
            for shadow, value in zip(self._shadows, values):
                shadow.assign(value)
            self._live = None

    def _select_variables(self, model):
        """The tracked variables in `model.variables` order (whose
        restriction to `model.weights` is `model.weights` order), and per
        variable whether its shadow is averaged."""
        trainable = {id(v) for v in model.trainable_variables}
        chosen = list(model.trainable_variables)
        if self.non_trainable != "ignore":
            chosen += model.non_trainable_variables
        by_id = {id(v): v for v in chosen}
        variables = []
        for v in list(model.variables) + chosen:
            if by_id.pop(id(v), None) is not None:
                variables.append(v)
        averaged = [
            _is_float(v.dtype)
            and (id(v) in trainable or self.non_trainable == "average")
            for v in variables
        ]
        return variables, averaged

    def _ensure_state(self, model):
        variables, averaged = self._select_variables(model)
        if self._shadows is not None:
            known = {id(v) for v in self._variables}
            if {id(v) for v in variables} != known:
                raise ValueError(
                    "The model's variables changed since this "
                    "ExponentialMovingAverage started tracking it (e.g. a "
                    "layer was added or made (non-)trainable). Create a new "
                    "callback, or load a saved state into a fresh one."
                )
            return
        if not variables:
            return
        raws = None
        if self._pending_state is not None:
            step, values, paths, raws = self._pending_state
            self._check_loaded(values, paths, variables)
        else:
            step = 0
            values = [
                ops.cast(v.value, _shadow_dtype(v, a))
                for v, a in zip(variables, averaged)
            ]
        shadows = []
        for i, (v, a, value) in enumerate(zip(variables, averaged, values)):
            shadows.append(
                keras.Variable(
                    ops.copy(ops.cast(value, _shadow_dtype(v, a))),
                    dtype=_shadow_dtype(v, a),
                    trainable=False,
                    name=f"ema_{i}",
                    **_layout_of(v),
                )
            )
        self._step = keras.Variable(
            step, dtype="int32", trainable=False, name="ema_step"
        )
        self._variables, self._averaged = variables, averaged
        self._shadows = shadows
        self._pending_state = None
        self._average = self._pairs = None
        self._packed = _packing(shadows, averaged)
        if raws is not None:
            self._restore_applied(raws)

    def _restore_applied(self, raws):
        """A state saved while the EMA weights were applied: apply them
        again, with `raws` (its raw weights) to restore."""
        self._sync_model()
        backup = []
        for variable, shadow, raw in zip(self._variables, self._shadows, raws):
            backup.append(ops.convert_to_tensor(raw, variable.dtype))
            variable.assign(ops.copy(ops.cast(shadow.value, variable.dtype)))
        self._backup = backup

    def _check_loaded(self, values, paths, variables):
        """Checks a loaded state against the model's tracked variables.

        The saved variable paths name the variable in the errors. Paths
        that merely differ (layer names depend on what was built before)
        are accepted when the shapes match; the same paths in another
        order are refused, since each shadow would land on another
        variable.
        """
        names = [v.path for v in variables]
        if len(values) != len(variables):
            raise ValueError(
                f"The saved EMA state has {len(values)} shadow weights but "
                f"the model has {len(variables)} tracked variables "
                f"(non_trainable={self.non_trainable!r}). Load a state saved "
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

    def _decay_at(self, step):
        t = ops.cast(step - self.start_step, "float32")
        if self.warmup == "tfa":
            d = ops.minimum(self.decay, (1.0 + t) / (10.0 + t))
        elif self.warmup == "power":
            base = 1.0 + ops.maximum(t, 0.0) / self.warmup_gamma
            d = 1.0 - ops.power(base, -self.warmup_power)
            d = ops.clip(d, 0.0, self.decay)
        else:
            d = ops.convert_to_tensor(self.decay, "float32")
        return ops.where(t > 0, d, ops.zeros_like(d))

    def _decay_is_positive(self):
        """Whether `d > 0` at every step (t >= 1): no copy phase, and no
        power warmup, whose first decays may round to 0 in float32."""
        return (
            self.start_step == 0 and self.decay > 0 and self.warmup != "power"
        )

    def _plan(self, step):
        """The decay at optimizer step `step` (1-based), and whether the
        shadows update at that step (`None`: every step does)."""
        due = None
        if self.update_every > 1:
            due = ops.equal(step % self.update_every, 0)
        return self._decay_at(step), due

    def _install(self, model):
        if self._shadows is None:
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
        if self._pairs is None and keras.backend.backend() != "jax":
            self._average = make_ema_average()
            pairs = list(zip(self._averaged, self._shadows, self._variables))
            self._pairs = (
                [(s, v) for a, s, v in pairs if a],
                [(s, v) for a, s, v in pairs if not a],
            )
        _train_step_hook.attach(model, self)
        self._installed = model

    def detach(self):
        """Remove this EMA from the model's train function.

        After `fit`, the wrapped train function stays on the model so that
        the next `fit` with this callback does not compile again; it runs
        the EMA update only during a `fit` that has this callback. `detach()`
        removes it, and gives the model back its own train step once no EMA
        is attached. The EMA state is kept.
        """
        if self._installed is None:
            return
        model, self._installed = self._installed, None
        _train_step_hook.deactivate(model, self)
        self._sync()
        _train_step_hook.detach(model, self)

    # ------------------------------------------------------------------
    # Train-step hook member (the protocol of `_train_step_hook`)
    # ------------------------------------------------------------------
    def update_in_place(self):
        """TensorFlow and torch: one update, assigned in place (fused)."""
        step = self._step.value + 1
        d, due = self._plan(step)
        if due is not None:
            d = ops.where(due, d, ops.ones_like(d))  # d = 1: unchanged
        averaged, copied = self._pairs
        # After the optimizer step no gradient is being recorded.
        weights = [ops.cast(v.value, "float32") for _, v in averaged]
        shadows = [s for s, _ in averaged]
        self._average(shadows, weights, d, positive=self._decay_is_positive())
        for shadow, variable in copied:
            weight = ops.stop_gradient(variable.value)
            if due is not None:
                weight = ops.where(due, weight, shadow.value)
            shadow.assign(ops.copy(weight))
        self._step.assign(step)

    def hook_variables(self):
        """JAX: the tracked variables, whose new values `advance` reads."""
        return list(self._variables)

    def hook_state(self):
        """JAX: `[step, *shadows]` (small shadows packed into one flat
        array), the live arrays if training ran."""
        if self._live is not None:
            return self._live
        shadows = [ops.copy(s.value) for s in self._shadows]
        return [ops.copy(self._step.value)] + _pack(shadows, self._packed)

    def advance(self, state, weights):
        """JAX: the pure update of the `hook_state` arrays."""
        step, shadows = state[0] + 1, state[1:]
        d, due = self._plan(step)
        packed = self._packed
        weights = [ops.stop_gradient(w) for w in weights]
        for i in packed:
            weights[i] = ops.cast(weights[i], "float32")
        weights = _pack(weights, packed)
        averaged = list(self._averaged)
        if packed:  # the flat array holds averaged shadows only
            averaged = [True] + _unpacked(averaged, packed)

        def update():
            new = []
            for a, shadow, weight in zip(averaged, shadows, weights):
                if a:
                    weight = ops.cast(weight, "float32")
                    new.append(d * shadow + (1.0 - d) * weight)
                else:
                    new.append(ops.copy(weight))
            return new

        if due is None:
            return [step] + update()
        new = ops.cond(due, update, lambda: [ops.copy(s) for s in shadows])
        return [step] + list(new)

    def receive_state(self, state):
        """JAX: keep the live arrays; `_sync` writes them back on demand."""
        self._live = list(state)
