"""`capture(name, tensor)`: tag an internal tensor for `OutputCapture`.

Also the registry of active captures: `push(record)` makes
`record(name, tensor)` receive every tag until `pop(record)`.
`OutputCapture` pushes its recorder on entry and pops it on exit.
"""

__all__ = ["capture", "pop", "push"]

# Recorders of the active captures, innermost last.
_ACTIVE = []


def push(record):
    """Send every tag to `record(name, tensor)` until `pop(record)`."""
    if not callable(record):
        raise TypeError(f"push() needs a callable, got {record!r}.")
    _ACTIVE.append(record)


def pop(record):
    """Stop sending tags to `record`; does nothing if it is not pushed."""
    for i in range(len(_ACTIVE) - 1, -1, -1):
        if _ACTIVE[i] == record:
            del _ACTIVE[i]
            return


def capture(name, tensor):
    """Tag `tensor` as `name` for any active `keras_cool.OutputCapture`.

    Returns `tensor` unchanged. When no capture is active the cost is a
    single truth test, so the tag can stay in production code; when one
    is active and one of its targets matches `name` (exactly or as a glob
    pattern), the tensor is recorded, one entry per call.

    Args:
        name: string naming the tensor, e.g. `"scores"`, or
            `f"{self.name}/scores"` to tell apart several instances of the
            same layer class.
        tensor: any tensor (or nest of tensors) computed in `call`.

    Returns:
        `tensor`, unchanged.

    Example:

    ```python
    class Normal(keras.layers.Layer):
        def call(self, x):
            x = keras_cool.capture("normalized", keras.ops.normalize(x))
            return x * 2.0

    model = keras.Sequential([keras.Input((4,)), Normal()])
    x = np.random.rand(2, 4)
    with keras_cool.OutputCapture(model, ["normalized"]) as cap:
        model(x)
    cap["normalized"].shape  # (2, 4)
    ```
    """
    if not _ACTIVE:
        return tensor
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"capture() needs a non-empty string name, got {name!r}."
        )
    for record in tuple(_ACTIVE):
        record(name, tensor)
    return tensor
