"""Exponential moving average (EMA) of a model's weights, as a callback.

The callback is the user's face; the update that runs in the train step is
`_ema_update.EmaUpdate`, the decay math `_ema_profiles`, the state files
`_ema_state`. Where the update runs on each backend, and the post-hoc
reconstruction, are described in the docs' "How it works: EMA" page.
"""

import contextlib

import keras

from keras_cool.callbacks import _exit_guard
from keras_cool.callbacks import _train_step_hook
from keras_cool.callbacks._ema_checks import CONFIG
from keras_cool.callbacks._ema_checks import check_arguments
from keras_cool.callbacks._ema_checks import check_best_weights
from keras_cool.callbacks._ema_checks import check_paths
from keras_cool.callbacks._ema_checks import check_profile
from keras_cool.callbacks._ema_checks import check_sigma_rel
from keras_cool.callbacks._ema_checks import check_trainable
from keras_cool.callbacks._ema_checks import running_callbacks
from keras_cool.callbacks._ema_profiles import Plan
from keras_cool.callbacks._ema_profiles import profiles_of
from keras_cool.callbacks._ema_state import SnapshotClock
from keras_cool.callbacks._ema_state import check_loaded
from keras_cool.callbacks._ema_state import read_state
from keras_cool.callbacks._ema_state import snapshot_path
from keras_cool.callbacks._ema_state import snapshots
from keras_cool.callbacks._ema_state import synthesize
from keras_cool.callbacks._ema_state import write_state
from keras_cool.callbacks._ema_swap import WeightSwap
from keras_cool.callbacks._ema_update import build_update

__all__ = ["ExponentialMovingAverage"]


@keras.saving.register_keras_serializable(package="keras_cool")
class ExponentialMovingAverage(keras.callbacks.Callback):
    """Keep an exponential moving average of the weights during `fit`.

    Works with any optimizer and with an already compiled model: no
    `use_ema=True` is needed. After every optimizer step (or every
    `update_every` steps) each shadow weight is updated inside the compiled
    train step as `shadow = d * shadow + (1 - d) * weight`. Training always
    continues on the raw weights; the EMA weights are swapped in for
    validation (optional), on request, and at the end of `fit` if asked.

    Decay, with `t = step - start_step` (optimizer steps): `d = 0` while
    `t <= 0` (the shadows copy the weights), then `d = decay`, or with
    `warmup="tfa"` `min(decay, (1 + t) / (10 + t))` (TF Addons), with
    `warmup="power"` `min(decay, 1 - (1 + t / warmup_gamma) **
    -warmup_power)` (timm's `ModelEmaV3`). With `sigma_rel`, a
    power-function EMA (Karras et al. 2024): `d = (1 - update_every / t) **
    (gamma + 1)` (0 while `t <= update_every`), where `sigma_rel**2 =
    (gamma + 1) / ((gamma + 2)**2 (gamma + 3))`: the average spans a fixed
    fraction of training; `sigma_rel=12**-0.5` (`gamma = 0`) is the uniform
    average from `start_step` (SWA). Shadows are float32.

    Several profiles (`sigma_rel=(0.05, 0.1)`) update in the same compiled
    step. The first serves `validate_on_ema`, `swap_on_epoch`,
    `final_weights` and the methods not given `profile=k`. With
    `snapshot_every`, every profile is saved to `snapshot_dir` every N
    steps, and `synthesize(sigma_rel)` rebuilds the average of any width
    from them after training (post-hoc EMA). Swaps copy values:
    `reset_old_weights()` restores the raw weights bit-exactly.

    Checkpoints: a `ModelCheckpoint` listed after this callback saves the
    EMA weights with `swap_on_epoch=True`, the raw weights otherwise; either
    resumes exactly with `ema.load_state(state)` (of `state_path`, or a
    snapshot) and `fit(..., initial_epoch=k)`. A best-only `ModelCheckpoint`
    or `EarlyStopping(restore_best_weights=True)` on a `val_*` score must
    keep the weights that were scored: with `validate_on_ema=True`, pass
    `swap_on_epoch=True` and list this callback first; with
    `validate_on_ema=False`, list it before this callback (or keep
    `swap_on_epoch=False`). Other combinations raise at `on_train_begin`.

    Args:
        decay: float in [0, 1), the EMA decay (momentum); not used with
            `sigma_rel`. Defaults to `0.999`.
        warmup: `None`, `"tfa"` or `"power"` (see above; `decay` only).
            Defaults to `None`.
        warmup_gamma: float > 0, timm's `warmup_gamma` (`"power"` only).
            Defaults to `1.0`.
        warmup_power: float > 0, timm's `warmup_power` (`"power"` only);
            2/3 reaches 0.999 after about 31.6K steps, 3/4 after 10K.
            Defaults to `2 / 3`.
        sigma_rel: `None`, a float in (0, 1/sqrt(12)] or a list of them:
            power-function profiles of these relative widths, instead of
            `decay`. Defaults to `None`.
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
        snapshot_every: optional int >= 1: save the state (every profile)
            to `snapshot_dir/ema-<step>.npz`, atomically, at the first
            batch after every multiple of this many steps, and at the end
            of `fit`. Defaults to `None`.
        snapshot_dir: the folder of the snapshots (with `snapshot_every`;
            it may hold earlier snapshots of the same run, when resuming).
            Defaults to `None`.
        **kwargs: passed to `keras.callbacks.Callback`.

    Example:

    ```python
    x, y = np.random.rand(64, 4), np.random.rand(64, 1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    ema = keras_cool.callbacks.ExponentialMovingAverage(
        sigma_rel=(0.05, 0.1), snapshot_every=4, snapshot_dir="snapshots"
    )
    model.fit(x, y, epochs=4, validation_split=0.25, callbacks=[ema], verbose=0)
    with ema.swapped_weights():  # the first profile, sigma_rel=0.05
        model.evaluate(x, y, verbose=0)
    with ema.swapped_weights(sigma_rel=0.07):  # rebuilt post hoc
        model.evaluate(x, y, verbose=0)
    ema.save_ema_model("ema_model.keras", profile=1)
    ```

    Reference:
        Polyak & Juditsky 1992; Su Jianlin, "让Keras更酷一些!" (2019);
        `tfa.optimizers.MovingAverage`; timm `ModelEmaV3`; Izmailov et al.
        2018 (SWA); Karras et al. 2024, "Analyzing and Improving the
        Training Dynamics of Diffusion Models" (power-function and
        post-hoc EMA).
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
        sigma_rel=None,
        snapshot_every=None,
        snapshot_dir=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        vars(self).update(check_arguments(locals()))
        self._plan = Plan(
            profiles_of(self.decay, self.sigma_rel),
            self.start_step,
            self.update_every,
            self.warmup,
            self.warmup_gamma,
            self.warmup_power,
        )
        self._update = None  # EmaUpdate: the shadows, once tracking
        self._pending_state = None  # a State from load_state before init
        self._swap = WeightSwap()  # the raw weights, while EMA is applied
        self._auto_swapped = False  # applied by this callback's hooks
        self._installed = None  # the model whose train step we hook
        self._eval_swapped = False  # applied by on_test/predict_begin
        self._clock = None  # SnapshotClock: when snapshots are due

    # ------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------
    @property
    def step(self):
        """Optimizer steps seen by the EMA (an int), 0 before training."""
        return 0 if self._update is None else self._update.step_count()

    @property
    def applied(self):
        """True while the EMA weights are in the model."""
        return self._swap.applied

    @property
    def _shadows(self):  # the first profile's (tests/test_distributed.py)
        return None if self._update is None else self._update.shadows[0]

    def ema_weights(self, profile=0):
        """The shadow weights of profile `profile` (an index into
        `sigma_rel`) as numpy arrays, one per tracked variable, in
        `model.weights` order (see `tracked_variables`).

        When the tracked variables are `model.weights` (no RNG seed
        states, `non_trainable` not `"ignore"`),
        `model.set_weights(ema.ema_weights())` puts the EMA weights in
        the model, each on its own variable.
        """
        self._require_state("read the EMA weights")
        count = len(self._plan.profiles)
        return self._update.numpy(check_profile(profile, count))

    def tracked_variables(self):
        """The model variables that have a shadow, in `model.variables`
        order (that of `model.weights`, with RNG seed states where
        `model.variables` has them); the shadows, `ema_weights()` and
        the arrays of `save_state` follow this order."""
        self._require_state("list the tracked variables")
        return list(self._update.variables)

    def synthesize(self, sigma_rel, step=None):
        """Post-hoc EMA: the weights of the power-function profile
        `sigma_rel` at the last snapshot (at most `step`), rebuilt from
        the snapshots in `snapshot_dir` by least squares, as numpy arrays
        in `tracked_variables()` order. Needs no model, and works in a
        later session: `ExponentialMovingAverage(snapshot_every=...,
        snapshot_dir=folder).synthesize(0.07)`.

        Raises:
            ValueError: if `snapshot_dir` holds no power-function snapshot.
        """
        (sigma_rel,) = check_sigma_rel(sigma_rel)
        if self.snapshot_dir is None:
            raise ValueError(
                "synthesize needs snapshots: create the callback with "
                "snapshot_every=N and snapshot_dir=folder."
            )
        return synthesize(self.snapshot_dir, sigma_rel, step)[0]

    def latest_snapshot(self):
        """The path of the last snapshot in `snapshot_dir` (to resume with
        `load_state`), or None."""
        found = snapshots(self.snapshot_dir) if self.snapshot_dir else []
        return found[-1][1] if found else None

    def apply_ema_weights(self, profile=0, sigma_rel=None):
        """Write the EMA weights into the model, keeping the raw weights:
        those of profile `profile`, or with `sigma_rel`, the weights that
        `synthesize(sigma_rel)` rebuilds.

        Raises:
            RuntimeError: if there is no EMA yet, or the EMA weights are
                already applied (call `reset_old_weights()` first).
        """
        self._require_state("apply the EMA weights")
        if sigma_rel is None:
            count = len(self._plan.profiles)
            values = self._update.tensors(check_profile(profile, count))
        else:
            values = self.synthesize(sigma_rel)
        self._sync_model()
        self._swap.apply(self._update.variables, values)

    def reset_old_weights(self):
        """Restore the raw weights saved by `apply_ema_weights()` (a copy,
        bit-exact).

        Raises:
            RuntimeError: if the EMA weights are not applied.
        """
        self._sync_model()
        self._swap.reset(self._update.variables if self._update else [])
        self._auto_swapped = False

    @contextlib.contextmanager
    def _swapped(self, profile, sigma_rel):
        if self.applied:  # Nested, or `swap_on_epoch=True` at epoch end.
            yield self
            return
        self.apply_ema_weights(profile, sigma_rel)
        try:
            yield self
        finally:
            self.reset_old_weights()

    def swapped_weights(self, profile=0, sigma_rel=None):
        """A context manager: EMA weights inside (see
        `apply_ema_weights`), raw weights restored bit-exactly on exit
        (also on exceptions).

        Where the EMA weights are in the model already (inside another
        `swapped_weights()`, or at epoch end with `swap_on_epoch=True`),
        it changes nothing, so `Evaluator(weights_context=...)` works with
        either setting. For instance
        `with ema.swapped_weights(): model.evaluate(x, y)`.
        """
        return self._swapped(profile, sigma_rel)

    def save_ema_model(self, filepath, profile=0, sigma_rel=None, **kwargs):
        """Save the model holding the EMA weights (see `apply_ema_weights`)
        with `model.save(filepath, **kwargs)`; the raw weights are
        restored."""
        self._require_state("save the EMA model")
        if self.applied:
            self.model.save(filepath, **kwargs)
            return
        with self.swapped_weights(profile, sigma_rel):
            self.model.save(filepath, **kwargs)

    def save_state(self, path):
        """Save the EMA state (step and every profile's shadows) atomically
        to a `.npz` file, for `load_state` when resuming.

        While the EMA weights are applied (`swap_on_epoch=True` at epoch
        end, inside `swapped_weights()`, after `final_weights="ema"`), the
        model holds no raw weights, so a checkpoint of it holds the EMA;
        the state then also holds the raw weights, and `load_state` puts
        them back.
        """
        self._require_state("save the EMA state")
        step, shadows = self._update.arrays()
        write_state(
            path,
            step,
            shadows,
            self._update,
            self.start_step,
            self._swap.backup,
        )
        return path

    def load_state(self, path):
        """Load a state written by `save_state`, or a snapshot.

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
        state = read_state(path)
        if self._update is None:
            self._pending_state = state
            if self._model is not None:
                self._ensure_state(self._model)
            return
        update = self._update
        check_loaded(
            state, update.variables, update.plan.profiles, self.non_trainable
        )
        update.assign(state.step, state.shadows)
        if state.raws is not None:
            self._restore_applied(state.raws)

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
        _train_step_hook.deactivate(model, self._update)
        self._update.sync()
        _train_step_hook.detach(model, self._update)

    # ------------------------------------------------------------------
    # Callback hooks
    # ------------------------------------------------------------------
    def set_model(self, model):
        if self._model is not None and model is not self._model:
            if self._update is not None:
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
        check_paths(self.state_path, self.snapshot_dir, model)
        if self.applied:
            # Training always continues on the raw weights.
            self.reset_old_weights()
        self._ensure_state(model)
        if self.applied:  # applied by a loaded state
            self.reset_old_weights()
        self._install(model)
        if self.snapshot_every:
            self._clock = SnapshotClock(self.snapshot_every, self.step)

    def on_train_end(self, logs=None):
        self._sync_model()
        if self._installed is not None:
            _train_step_hook.deactivate(self._installed, self._update)
        self._update.sync()
        if self._clock is not None and self._clock.last != self.step:
            self._snapshot()  # the end of training, for `synthesize`
        if self._auto_swapped:
            self.reset_old_weights()
        if self.final_weights == "ema" and not self.applied:
            self.apply_ema_weights()

    def on_epoch_begin(self, epoch, logs=None):
        if self._auto_swapped:
            self.reset_old_weights()
            _exit_guard.cancel(self._model, self._undo_epoch_swap)

    def on_train_batch_begin(self, batch, logs=None):
        if self._clock is not None and self._clock.due(batch):
            self._snapshot()

    def on_epoch_end(self, epoch, logs=None):
        self._sync_model()
        if self._clock is not None and self._clock.due(None, self.step):
            self._snapshot()
        if self.swap_on_epoch and not self.applied:
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
        config = {name: getattr(self, name) for name in CONFIG}
        if self.sigma_rel is not None:
            config["sigma_rel"] = list(self.sigma_rel)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------------
    # Internals
    # ------------------------------------------------------------------
    def _snapshot(self):
        step, shadows = self._update.arrays()
        path = snapshot_path(self.snapshot_dir, step)
        write_state(path, step, shadows, self._update, self.start_step)
        self._clock.written(step)

    def _auto_apply(self):
        if self._pending_state is not None and self._model is not None:
            self._ensure_state(self._model)
        if self.validate_on_ema and self._update is not None:
            if not self.applied:
                _exit_guard.on_exit(self._model, self._auto_reset)
                self._eval_swapped = True
                self.apply_ema_weights()
                return
        self._eval_swapped = False

    def _undo_epoch_swap(self):
        if self._auto_swapped and self.applied:
            self.reset_old_weights()

    def _auto_reset(self):
        if self._eval_swapped:
            self._eval_swapped = False
            if self.applied:
                self.reset_old_weights()

    def _require_state(self, what):
        if self._update is None and self._pending_state is not None:
            if self._model is not None:
                self._ensure_state(self._model)
        if self._update is None:
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

    def _ensure_state(self, model):
        state, self._pending_state = self._pending_state, None
        update = build_update(
            model, self.non_trainable, self._plan, self._update, state
        )
        if update is not None and self._update is None:
            self._update = update
            if state is not None and state.raws is not None:
                self._restore_applied(state.raws)

    def _restore_applied(self, raws):
        self._sync_model()
        update = self._update
        self._swap.apply_loaded(update.variables, update.tensors(0), raws)

    def _install(self, model):
        check_trainable(model, self._update is not None)
        self._update.prepare()
        _train_step_hook.attach(model, self._update)
        self._installed = model
