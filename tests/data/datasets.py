"""Datasets shared by the tests of `keras_cool.data`.

They live at module level in an importable module, so worker processes
can unpickle them.
"""

import random

import keras
import numpy as np

import keras_cool


class Noise(keras_cool.Sequence):
    """Each batch: its index, epoch, and draws from every random source."""

    def __init__(self, num_batches=6, **kwargs):
        super().__init__(**kwargs)
        self.count = num_batches

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return np.array(
            [
                index,
                self.epoch,
                self.rng.integers(10**9),
                np.random.randint(10**9),
                random.randrange(10**9),
            ]
        )


class Regression(keras_cool.Sequence):
    """A tiny regression problem whose inputs are random per batch."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def __len__(self):
        return 5

    def __getitem__(self, index):
        x = self.rng.normal(size=(8, 4)).astype("float32") + index
        y = x.sum(axis=1, keepdims=True) * 0.1
        return x, y


def tiny_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    net = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    net.compile(keras.optimizers.SGD(0.05), "mse")
    return net


def epochs_of(dataset, count=2):
    out = [np.stack(list(dataset)) for _ in range(count)]
    dataset.close()
    return np.stack(out)
