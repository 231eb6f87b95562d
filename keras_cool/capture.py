"""`capture(name, tensor)`: tag an internal tensor for `OutputCapture`.

A custom layer calls `capture("scores", x)` inside its `call`. With no
`OutputCapture` active this is one check of a module-level list and the
tensor comes back untouched, so the tag can stay in production code.
"""

__all__ = ["capture"]

# Active `OutputCapture` objects, innermost last. `OutputCapture` pushes
# itself on entry and pops itself on exit.
_ACTIVE = []


def capture(name, tensor):
    """Tag `tensor` as `name` for any active `keras_cool.OutputCapture`.

    Returns `tensor` unchanged. When no capture is active the cost is a
    single truth test; when one is active and one of its targets matches
    `name` (exactly or as a glob pattern), the tensor is recorded, one
    entry per call.

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

    with keras_cool.OutputCapture(model, ["normalized"]) as cap:
        model(x)
    cap["normalized"]
    ```
    """
    if not _ACTIVE:
        return tensor
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"capture() needs a non-empty string name, got {name!r}."
        )
    for active in _ACTIVE:
        active._record_tag(name, tensor)
    return tensor
