"""Gradients computed with the backend's own autodiff, as a test reference.

Library code may not import a backend; tests may. `backend_grad(fn,
variables)` returns the gradients of the scalar `fn()` with respect to
Keras variables, as numpy arrays, using `tf.GradientTape`, `jax.grad`
(through a `keras.StatelessScope`) or `torch.autograd.grad`.
"""

import keras
import numpy as np
import pytest


def _tensorflow_grad(fn, variables):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        for v in variables:
            tape.watch(v.value)
        loss = fn()
    grads = tape.gradient(loss, [v.value for v in variables])
    return [
        np.zeros(v.shape) if g is None else np.asarray(g)
        for v, g in zip(variables, grads)
    ]


def _jax_grad(fn, variables):
    import jax

    def pure(values):
        mapping = list(zip(variables, values))
        with keras.StatelessScope(state_mapping=mapping):
            return fn()

    grads = jax.grad(pure)([v.value for v in variables])
    return [np.asarray(g) for g in grads]


def _torch_grad(fn, variables):
    import torch

    loss = fn()
    grads = torch.autograd.grad(
        loss, [v.value for v in variables], allow_unused=True
    )
    return [
        np.zeros(v.shape) if g is None else g.detach().cpu().numpy()
        for v, g in zip(variables, grads)
    ]


@pytest.fixture
def backend_grad():
    """`grad(fn, variables)` -> list of numpy gradients of scalar `fn()`."""
    return {
        "tensorflow": _tensorflow_grad,
        "jax": _jax_grad,
        "torch": _torch_grad,
    }[keras.backend.backend()]
