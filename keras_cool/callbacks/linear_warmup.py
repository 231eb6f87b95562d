"""Per-step linear learning-rate warmup that composes with any optimizer."""

import keras
import numpy as np
from keras import ops

from keras_cool.callbacks._checks import check_count
from keras_cool.callbacks._optimizer import StepClock
from keras_cool.callbacks._optimizer import inner_optimizer
from keras_cool.callbacks._optimizer import optimizer_iterations
from keras_cool.callbacks._step_schedule import StepSchedule
from keras_cool.optimizers.schedules.warmup_schedule import WarmupSchedule

__all__ = ["LinearWarmup"]


@keras.saving.register_keras_serializable(package="keras_cool")
class LinearWarmup(keras.callbacks.Callback):
    """Linear learning-rate warmup, per optimizer step, then hands back.

    During the first `N` optimizer steps after training starts, the learning
    rate the optimizer uses at step `k` (0-based) is
    `base(k) * (k + 1) / N`, where `base` is what the optimizer already
    has: a float learning rate or any `LearningRateSchedule`. From step `N`
    on, the optimizer uses exactly its original learning rate.

    - Float learning rate: the optimizer's learning-rate variable is
      assigned for each warmup step inside the compiled train step (no
      per-batch Python work), and set back to the exact original value
      when the warmup ends or training stops.
    - `LearningRateSchedule`: during `fit` the schedule is wrapped in a
      registered `WarmupSchedule`. At the end of `fit` the optimizer gets
      back a schedule with the original config (deserialized from the
      optimizer config, so custom schedules must be registered).

    The warmup is counted from the optimizer step at the first `fit` that
    uses this callback (or from `start_step`); calling `fit` again with the
    same callback resumes an unfinished warmup. Other callbacks that set the
    learning rate during the warmup (e.g. `ReduceLROnPlateau`) are
    overwritten for those steps.
    With `steps_per_execution > 1` a float learning rate changes once per
    execution; a schedule still changes every step. With mixed precision
    (`LossScaleOptimizer`) the inner optimizer's learning rate is warmed up.

    Args:
        warmup_steps: number of optimizer steps of the warmup. Defaults
            to `None`.
        warmup_epochs: number of epochs of the warmup instead; converted to
            steps with `params["steps"]` (the steps per epoch of `fit`).
            Give exactly one of `warmup_steps` and `warmup_epochs`.
            Defaults to `None`.
        start_step: optimizer step at which the warmup starts; `None`: the
            step when the first `fit` with this callback starts. Pass 0 to
            tie the warmup to the optimizer's own step count, so training
            resumed from a checkpoint (e.g. `BackupAndRestore`) past the
            warmup does not warm up again. Defaults to `None`.
        verbose: 1 prints a line when the warmup ends. Defaults to `0`.

    Example:

    ```python
    x, y = np.random.rand(32, 4), np.random.rand(32, 1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    warmup = keras_cool.callbacks.LinearWarmup(warmup_epochs=1)
    model.fit(x, y, epochs=2, batch_size=8, callbacks=[warmup], verbose=0)

    # With a schedule: it is multiplied by the warmup factor.
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, 100)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    warmup = keras_cool.callbacks.LinearWarmup(warmup_steps=4)
    model.fit(x, y, batch_size=8, callbacks=[warmup], verbose=0)
    ```

    Reference:
        Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in
        1 Hour", 2017 (gradual warmup).
    """

    def __init__(
        self, warmup_steps=None, warmup_epochs=None, start_step=None, verbose=0
    ):
        super().__init__()
        if (warmup_steps is None) == (warmup_epochs is None):
            raise ValueError(
                "Give exactly one of warmup_steps and warmup_epochs, got "
                f"warmup_steps={warmup_steps}, warmup_epochs={warmup_epochs}."
            )
        check_count("warmup_steps", warmup_steps, optional=True, integer=False)
        check_count(
            "warmup_epochs", warmup_epochs, optional=True, integer=False
        )
        self.warmup_steps = warmup_steps
        self.warmup_epochs = warmup_epochs
        self.start_step = None if start_step is None else int(start_step)
        self.verbose = verbose
        self._start = None
        self._total = None
        self._done = False
        self._clock = StepClock()
        self._member = None

    def _total_steps(self):
        if self.warmup_steps is not None:
            return int(self.warmup_steps)
        steps = (self.params or {}).get("steps")
        if not steps:
            raise ValueError(
                "LinearWarmup(warmup_epochs=...) needs the number of steps "
                "per epoch, but fit() does not know it (a dataset of unknown "
                "length?). Pass steps_per_epoch to fit() or use "
                "LinearWarmup(warmup_steps=...)."
            )
        return max(1, int(round(self.warmup_epochs * steps)))

    def on_train_begin(self, logs=None):
        self._restore = None
        if self._done:
            return
        model = self.model
        optimizer = inner_optimizer(model)
        if optimizer is None:
            raise ValueError("LinearWarmup needs a compiled model.")
        self._total = self._total_steps()
        now = optimizer_iterations(model)
        if self._start is None:
            self._start = now if self.start_step is None else self.start_step
        if now - self._start >= self._total:
            self._finish()
            return
        self._clock.on_train_begin(model)
        learning_rate = optimizer.learning_rate
        if isinstance(learning_rate, keras.Variable):
            self._base = np.array(learning_rate.numpy())
            self._restore = "float"
            self._start_in_graph(model, learning_rate)
            return
        config = optimizer.get_config()["learning_rate"]
        try:
            schedule = keras.optimizers.schedules.deserialize(config)
        except Exception as error:
            raise TypeError(
                "LinearWarmup supports a float learning rate or a keras."
                "optimizers.schedules.LearningRateSchedule that can be "
                "deserialized from the optimizer config (register custom "
                "schedules with keras.saving.register_keras_serializable). "
                f"Could not rebuild {config!r}: {error}"
            ) from error
        if not isinstance(
            schedule, keras.optimizers.schedules.LearningRateSchedule
        ):
            raise TypeError(
                "LinearWarmup supports a float learning rate or a "
                "LearningRateSchedule, not a plain callable learning rate "
                f"({config!r})."
            )
        self._schedule = schedule
        optimizer.learning_rate = WarmupSchedule(
            schedule, self._total, start_step=self._start
        )
        model.make_train_function(force=True)
        self._restore = "schedule"

    def _start_in_graph(self, model, variable):
        """The float warmup inside the train step, where it can run."""
        if not StepSchedule.supported(model, variable):
            return
        base, start, total = float(self._base), self._start, self._total
        key = (variable, model.optimizer.iterations, base, start, total)
        if self._member is None or self._member_key != key:
            self._member_key = key

            def warmup(step, current):
                done = ops.cast(step, "float32") - float(start - 1)
                value = base * (done / float(total))
                # From the last warmup step on: the base, then untouched.
                tail = ops.where(done == total, base, current)
                return ops.where(done < total, value, tail)

            if self._member is not None:
                self._member.detach()
            self._member = StepSchedule(model, variable, warmup)
        self._member.start()

    def _in_graph(self):
        return self._member is not None and self._member.active

    def on_epoch_begin(self, epoch, logs=None):
        if self._restore == "float" and not self._done:
            if not self._in_graph():
                self._clock.on_epoch_begin(self.model)

    def on_train_batch_begin(self, batch, logs=None):
        if self._restore != "float" or self._done or self._in_graph():
            return
        step = self._clock.step(batch) - self._start
        optimizer = inner_optimizer(self.model)  # syncs the JAX state first
        if step + 1 >= self._total:
            optimizer.learning_rate = self._base
            self._finish()
        else:
            factor = (step + 1) / self._total
            optimizer.learning_rate = float(self._base) * factor

    def on_train_end(self, logs=None):
        if self._restore == "float":
            model = self.model
            inner_optimizer(model).learning_rate = self._base
            if self._in_graph():
                self._member.stop()
                if optimizer_iterations(model) - self._start >= self._total:
                    self._finish()
        elif self._restore == "schedule":
            model = self.model
            step = optimizer_iterations(model) - self._start
            inner_optimizer(model).learning_rate = self._schedule
            model.make_train_function(force=True)
            if step >= self._total:
                self._finish()
        self._restore = None

    def _finish(self):
        self._done = True
        if self.verbose and self._total:
            print(f"LinearWarmup: warmup of {self._total} steps done.")

    def get_config(self):
        return {
            "warmup_steps": self.warmup_steps,
            "warmup_epochs": self.warmup_epochs,
            "start_step": self.start_step,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
