"""Private helpers shared by the keras_cool callbacks (not public API)."""

__all__ = ["optimizer_iterations"]


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
