"""Helpers shared by the callback tests.

`StepLosses` reads per-step values out of `logs["loss"]` (the running mean
over the epoch) without touching the model, so it never syncs the JAX
training state: a sync in a batch hook would hide a callback that writes
without one.
"""

import keras


class StepLosses(keras.callbacks.Callback):
    """Per-step losses from the running mean in the logs, with no state
    sync; `losses[k]` is the loss of the k-th step of `fit`."""

    def __init__(self):
        super().__init__()
        self.losses = []

    def on_epoch_begin(self, epoch, logs=None):
        self._mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = logs["loss"]
        self.losses.append((batch + 1) * mean - batch * self._mean)
        self._mean = mean
