"""Private: the model's optimizer and its step count, for the callbacks."""

__all__ = ["StepClock", "inner_optimizer", "optimizer_iterations"]


def inner_optimizer(model):
    """The optimizer that owns the learning rate (unwraps loss scaling)."""
    optimizer = getattr(model, "optimizer", None)
    # keras.optimizers.LossScaleOptimizer (mixed precision) wraps another.
    return getattr(optimizer, "inner_optimizer", optimizer)


def optimizer_iterations(model):
    """The optimizer's update count as a Python int, or None.

    Call it only where the model state is attached (any `callback.model`
    access on JAX syncs it first): at `on_train_begin`, `on_epoch_begin`.
    """
    optimizer = getattr(model, "optimizer", None)
    iterations = getattr(optimizer, "iterations", None)
    if iterations is None:
        return None
    return int(iterations.numpy())


class StepClock:
    """The optimizer step a batch runs as, without a per-batch sync.

    Reads the optimizer's count at the start of training and of each epoch
    (where reading it is cheap); `step(batch)` is then that count plus the
    batch index within the epoch (0 without an optimizer).
    """

    def __init__(self):
        self.epoch_start = 0

    def on_train_begin(self, model):
        self.epoch_start = optimizer_iterations(model) or 0

    def on_epoch_begin(self, model):
        self.epoch_start = optimizer_iterations(model) or 0

    def step(self, batch):
        """The optimizer steps completed before `batch` of this epoch."""
        return self.epoch_start + batch
