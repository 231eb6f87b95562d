"""Private: a schedule of the optimizer step, run inside the train step.

`StepSchedule` is a member of the train-step hook (`_train_step_hook`):
right after the optimizer step of every training step, it assigns
`function(step, current)` to its variable, where `step` is the optimizer's
new step count (the step about to run next) and `current` the variable's
value. Nothing runs per batch in Python, so `fit` keeps its asynchronous
dispatch (on JAX, no state sync per step).

`graph_function(schedule)` tells whether a schedule can run there: a
`LearningRateSchedule`, or a callable that, given a symbolic step, returns
a symbolic tensor (it is written in `keras.ops`). A plain Python function
(`min`, `math`, NumPy, a constant) is not one, and keeps the Python path.
"""

import keras
from keras import ops

from keras_cool.callbacks import _train_step_hook

__all__ = ["StepSchedule", "graph_function"]


def graph_function(schedule):
    """`schedule` as a function of the step tensor, or None where it is not
    written in `keras.ops`. A `LearningRateSchedule` gets the step as it is
    (an integer tensor), any other callable as a float32 tensor (so that
    Python operators on it work on every backend; exact below 2**24)."""
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return schedule
    try:
        value = schedule(keras.KerasTensor((), dtype="float32"))
    except Exception:
        return None
    if not isinstance(value, keras.KerasTensor):
        return None
    return lambda step: schedule(ops.cast(step, "float32"))


class StepSchedule:
    """Assigns `function(step, current)` to `variable` after each step.

    Args:
        model: the compiled model (its optimizer counts the steps).
        variable: a variable of the model or of its optimizer.
        function: `function(step, current) -> value`, in `keras.ops`.
    """

    def __init__(self, model, variable, function):
        self.model = model
        self.variable = variable
        self.function = function
        self.iterations = model.optimizer.iterations
        self.active = False

    @staticmethod
    def supported(model, variable):
        """Whether the JAX trainer state holds `variable` (elsewhere: any
        variable can be assigned in place)."""
        if getattr(model, "optimizer", None) is None:
            return False
        return _train_step_hook.can_write(model, variable)

    def current(self, model, variable):
        """Whether this member still fits `model` (not compiled again with
        another optimizer) and `variable`."""
        return (
            self.model is model
            and self.variable is variable
            and self.iterations is model.optimizer.iterations
        )

    def value(self, step, current):
        value = self.function(step, current)
        value = ops.cast(value, self.variable.dtype)
        return ops.broadcast_to(value, self.variable.shape)

    def assign_now(self):
        """Assigns the value for the step about to run, outside the step."""
        step = ops.convert_to_tensor(self.iterations.numpy())
        self.variable.assign(self.value(step, self.variable.value))

    def assign_last(self):
        """Assigns the value the last step used (after `fit`; in the step,
        the value for the next step is written)."""
        step = int(self.iterations.numpy()) - 1
        if step >= 0:
            step = ops.convert_to_tensor(step)
            self.variable.assign(self.value(step, self.variable.value))

    def start(self):
        self.assign_now()
        _train_step_hook.attach(self.model, self)
        self.active = True

    def stop(self):
        _train_step_hook.deactivate(self.model, self)
        self.active = False

    def detach(self):
        _train_step_hook.detach(self.model, self)
        self.active = False

    # Train-step hook protocol (see `_train_step_hook`).
    def update_in_place(self):
        step = ops.convert_to_tensor(self.iterations)
        self.variable.assign(self.value(step, self.variable.value))

    def hook_variables(self):
        return [self.iterations, self.variable]

    def hook_writes(self):
        return [self.variable]

    def hook_state(self):
        return []

    def advance(self, state, weights):
        return []

    def write(self, state, weights):
        step, current = weights
        return [self.value(step, current)]

    def receive_state(self, state):
        pass
