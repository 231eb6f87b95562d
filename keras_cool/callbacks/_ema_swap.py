"""Private: the raw weights kept while the EMA weights are in the model.

`WeightSwap.apply` copies the raw values out and the EMA values in;
`reset` copies the raw values back, bit-exactly (a copy, not an
add-and-subtract).
"""

from keras import ops

__all__ = ["WeightSwap"]


class WeightSwap:
    """The raw values of `variables` while other values are applied."""

    def __init__(self):
        self.backup = None  # the raw values, while applied

    @property
    def applied(self):
        return self.backup is not None

    def apply(self, variables, values):
        """Keeps the raw values of `variables`, then assigns `values`."""
        if self.backup is not None:
            raise RuntimeError(
                "The EMA weights are already applied; applying twice would "
                "lose the raw weights. Call reset_old_weights() first."
            )
        self.backup = [ops.copy(ops.stop_gradient(v.value)) for v in variables]
        for variable, value in zip(variables, values):
            variable.assign(ops.copy(ops.cast(value, variable.dtype)))

    def reset(self, variables):
        """Assigns the kept raw values back."""
        if self.backup is None:
            raise RuntimeError(
                "reset_old_weights() called but the EMA weights are not "
                "applied: there are no raw weights to restore. Call "
                "apply_ema_weights() first."
            )
        for variable, value in zip(variables, self.backup):
            variable.assign(value)
        self.backup = None

    def apply_loaded(self, variables, values, raws):
        """A state saved while the EMA weights were applied: assigns
        `values` again, with `raws` (its raw weights) kept to restore."""
        backup = [
            ops.convert_to_tensor(r, v.dtype) for v, r in zip(variables, raws)
        ]
        for variable, value in zip(variables, values):
            variable.assign(ops.copy(ops.cast(value, variable.dtype)))
        self.backup = backup
