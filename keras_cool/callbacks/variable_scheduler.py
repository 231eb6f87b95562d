"""Set any keras.Variable from a function of the step or the epoch."""

import keras
import numpy as np

from keras_cool.callbacks._optimizer import StepClock
from keras_cool.callbacks._step_schedule import StepSchedule
from keras_cool.callbacks._step_schedule import graph_function

__all__ = ["VariableScheduler"]


def _model_variable_ids(model):
    variables = list(model.variables) + list(model.metrics_variables)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:
        variables += list(optimizer.variables)
    return {id(v) for v in variables}


def _checked(raw, index, variable):
    """`schedule(index)`'s value as an array of the variable's dtype;
    refuses None, non-numbers, NaN and values an integer (or bool)
    variable cannot hold exactly, instead of casting them silently."""
    where = f"schedule({index}) for variable {variable.path!r}"
    try:
        array = np.asarray(raw)
    except Exception:  # noqa: BLE001
        array = np.asarray(None)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{where} returned {raw!r}; it must return a number (or an "
            "array of numbers). A missing `return`?"
        )
    dtype = keras.backend.standardize_dtype(variable.dtype)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        if "float" not in dtype or np.isnan(array).any():
            raise ValueError(f"{where} returned {raw!r}, which is not finite.")
    if "float" not in dtype and array.dtype.kind == "f":
        if not np.array_equal(array, np.round(array)):
            raise ValueError(
                f"{where} returned {raw!r}, but the variable has dtype "
                f"{dtype}: the value would be truncated. Return integers "
                "(round in the schedule) or use a float variable."
            )
    return np.asarray(array, dtype=variable.dtype)


class VariableScheduler(keras.callbacks.Callback):
    """Assigns a `keras.Variable` from `schedule(step)` or `schedule(epoch)`.

    Use it for any hyperparameter that changes during training and is read
    inside the compiled training step: a KL weight beta, a gradient-switch
    scale, a loss weight, a label-smoothing mix. The variable must be
    tracked by the model being trained (assigned as a layer attribute, e.g.
    `self.beta = keras.Variable(1.0, trainable=False)`, or created with
    `add_weight`): on JAX, `fit` passes the model's variables into the
    compiled step as state, and any other variable is frozen into the step
    as a constant. The callback checks this at the start of training and
    raises a clear error on every backend otherwise.

    With `per="step"`, a schedule that is a `LearningRateSchedule` or a
    function of the step written in `keras.ops` (it returns a tensor when
    called with a symbolic step, e.g. `lambda step: ops.minimum(1.0,
    step / 1000)`; it gets the step as a float32 tensor) is evaluated
    inside the compiled train step, right after the optimizer step: nothing
    runs per batch in Python. Any other schedule (plain Python: `min`,
    `math`, NumPy) is called before each step in Python; on JAX each
    change of value then costs a sync of the training state.

    On JAX, a variable made from a Python number without a `dtype`
    (`keras.Variable(0.0)`) is weakly typed, and its first assignment after
    the training step was compiled forces one recompile; give the dtype
    (`keras.Variable(0.0, dtype="float32")`) or use `add_weight`.

    At the end of each epoch the current value (scalar variables only) is
    written into `logs[name]`, so the progress bar and `History` show it.

    Args:
        variable: the `keras.Variable` to assign. A Python number or numpy
            value is rejected with a `TypeError`: it cannot change inside a
            compiled step; wrap it in `keras.Variable(...)`.
        schedule: Python callable, `schedule(index) -> value`; `index` is
            the optimizer step about to run (0-based, counted over all
            `fit` calls, so it resumes after loading a checkpoint) for
            `per="step"`, or the epoch index (0-based, as `fit` counts it)
            for `per="epoch"`. The value is cast to the variable's dtype and
            broadcast to its shape.
        per: `"step"` (before every training step) or `"epoch"` (at the
            start of every epoch). Defaults to `"step"`.
        name: key for `logs`; `None`: the variable's name. `False`: do not
            log. Defaults to `None`.
        verbose: 1 prints the value at the end of each epoch. Defaults to
            `0`.
        in_graph: `None`: evaluate a per-step schedule inside the train
            step where it can be (see above). `False`: always call it in
            Python (e.g. a `keras.ops` schedule that reads Python state
            that changes during training). `True`: require it, and raise a
            `ValueError` where it cannot be. Defaults to `None`.

    Example:

    ```python
    class KLLoss(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.beta = keras.Variable(
                0.0, trainable=False, dtype="float32", name="beta"
            )

        def call(self, kl):
            self.add_loss(self.beta * keras.ops.mean(kl))
            return kl

    kl_layer = KLLoss()
    inputs = keras.Input((4,))
    model = keras.Model(inputs, kl_layer(keras.layers.Dense(4)(inputs)))
    model.compile("adam", "mse")
    anneal = keras_cool.callbacks.VariableScheduler(
        kl_layer.beta, lambda step: min(1.0, step / 1000), per="step"
    )
    x = np.random.rand(32, 4)
    model.fit(x, x, epochs=1, batch_size=8, callbacks=[anneal], verbose=0)
    float(kl_layer.beta)  # 0.003 after 4 steps
    ```

    Reference:
        Bowman et al., "Generating Sentences from a Continuous Space", 2016
        (KL annealing).
    """

    def __init__(
        self,
        variable,
        schedule,
        per="step",
        name=None,
        verbose=0,
        in_graph=None,
    ):
        super().__init__()
        if not isinstance(variable, keras.Variable):
            raise TypeError(
                "VariableScheduler needs a keras.Variable to assign, got "
                f"{type(variable).__name__} {variable!r}. A Python or numpy "
                "number is frozen into the compiled training step and "
                "cannot be scheduled: wrap it in keras.Variable, e.g. "
                "`self.beta = keras.Variable(0.1, trainable=False)` in your "
                "layer, and read that variable in `call`."
            )
        if not callable(schedule):
            raise TypeError(
                "schedule must be a callable `schedule(index) -> value`, "
                f"got {schedule!r}."
            )
        if per not in ("step", "epoch"):
            raise ValueError(f'per must be "step" or "epoch", got {per!r}.')
        if in_graph not in (None, True, False):
            raise ValueError(
                f"in_graph must be None, True or False, got {in_graph!r}."
            )
        self.in_graph = in_graph
        self._member = None
        self.variable = variable
        self.schedule = schedule
        self.per = per
        self.name = variable.name if name is None else name
        self.verbose = verbose
        self._last = None
        self._clock = StepClock()

    def _value(self, index):
        value = _checked(self.schedule(index), index, self.variable)
        try:
            return np.broadcast_to(value, self.variable.shape)
        except ValueError as error:
            raise ValueError(
                f"schedule({index}) returned shape {value.shape}, which does "
                f"not fit variable {self.variable.path!r} of shape "
                f"{self.variable.shape}."
            ) from error

    def _assign(self, index):
        value = self._value(index)
        if self._last is not None and np.array_equal(value, self._last):
            return
        _ = self.model  # on JAX: sync the training state before writing
        self.variable.assign(value)
        self._last = value

    def on_train_begin(self, logs=None):
        model = self.model
        if id(self.variable) not in _model_variable_ids(model):
            raise ValueError(
                f"VariableScheduler: variable {self.variable.path!r} is not "
                "tracked by the model being trained, so on JAX its value "
                "would be frozen into the compiled step and the schedule "
                "would have no effect. Make it part of the model: assign it "
                "as an attribute of a layer of the model (`self.beta = "
                "keras.Variable(..., trainable=False)`) or create it with "
                "`layer.add_weight(...)`."
            )
        self._last = None
        self._clock.on_train_begin(model)
        self._start_in_graph(model)

    def _start_in_graph(self, model):
        """Per step: run the schedule inside the train step if it can."""
        if self.per != "step" or self.in_graph is False:
            return
        function = None
        if StepSchedule.supported(model, self.variable):
            function = graph_function(self.schedule)
        if function is None:
            if self.in_graph:
                raise ValueError(
                    "VariableScheduler(in_graph=True): the schedule cannot "
                    "run inside the train step. It must be a "
                    "LearningRateSchedule or a function of the step written "
                    "in keras.ops, the model must be compiled, and on JAX "
                    "the variable must be a model or optimizer variable "
                    "(no keras.distribution). Pass in_graph=None to fall "
                    "back to the Python path."
                )
            return
        member = self._member
        if member is None or not member.current(model, self.variable):
            if self._member is not None:
                self._member.detach()
            self._member = StepSchedule(
                model, self.variable, lambda step, current: function(step)
            )
        self._member.start()

    def on_epoch_begin(self, epoch, logs=None):
        if self.per == "epoch":
            self._assign(epoch)
        elif not self._in_graph():
            self._clock.on_epoch_begin(self.model)

    def _in_graph(self):
        member = self._member
        return member is not None and member.active

    def on_train_batch_begin(self, batch, logs=None):
        if self.per == "step" and not self._in_graph():
            self._assign(self._clock.step(batch))

    def on_train_end(self, logs=None):
        if self._in_graph():
            self._member.stop()
            # The in-graph member wrote the value for the next step; leave
            # the value the last step used, as the Python path does.
            _ = self.model  # on JAX: sync the training state first
            self._member.assign_last()

    def on_epoch_end(self, epoch, logs=None):
        if self._in_graph():
            _ = self.model  # on JAX: sync the training state first
            # The value the epoch's last step used.
            step = int(self._member.iterations.numpy()) - 1
            self._last = self._value(step) if step >= 0 else None
        if self._last is None:
            return
        if self.verbose:
            print(f"VariableScheduler: {self.name} = {self._last}")
        if logs is not None and self.name is not False:
            if self._last.ndim == 0:
                logs[self.name] = float(self._last)
