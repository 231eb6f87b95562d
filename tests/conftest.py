"""Shared pytest setup: one suite for the TensorFlow, JAX and torch backends.

Markers:
    backends("jax", "torch"): run only on these backends.
    multi_device(n): needs at least n devices, skipped otherwise (on the
        CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=2 for JAX).
    slow: runs a whole example or benchmark script.

Fixtures: `backend` (the backend's name), `repo_root`, and `backend_grad`:
`backend_grad(fn, variables)` returns the gradients of the scalar `fn()`
with respect to Keras variables, as numpy arrays, using the backend's own
autodiff (`tf.GradientTape`, `jax.grad` through a `keras.StatelessScope`,
`torch.autograd.grad`) as a test reference. Library code may not import a
backend; tests may.
"""

import os
import signal

# The suite compiles thousands of small XLA programs (every JAX test, and
# the scripts it starts) and runs each only a few times, so LLVM's
# optimisation passes cost more time than they save: tests compile at
# level 0 unless XLA_FLAGS already chooses a level. Set before Keras
# imports a backend, which reads XLA_FLAGS when it starts.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = " ".join(
        [os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0"]
    ).strip()

import keras  # noqa: E402
import numpy as np
import pytest

BACKEND = keras.backend.backend()

# The Ctrl-C tests need Python's own SIGINT handler, in this process and in
# the ones it starts. A shell that runs pytest in the background without job
# control (`nohup pytest &` in a script) starts it with SIGINT ignored, and
# child processes inherit an ignored signal; a handled one is reset for them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {BACKEND}"


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    """A clean Keras session and fixed seeds for every test."""
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(1337)
    yield
    keras.utils.clear_session(free_memory=False)


def _device_count():
    """Devices Keras can distribute over (1 where the backend has no list)."""
    try:
        return len(keras.distribution.list_devices())
    except Exception:  # The torch backend has no distribution device list.
        return 1


def pytest_collection_modifyitems(config, items):
    for item in items:
        marker = item.get_closest_marker("backends")
        if marker and BACKEND not in marker.args:
            item.add_marker(
                pytest.mark.skip(reason=f"only for backends {marker.args}")
            )
            continue
        marker = item.get_closest_marker("multi_device")
        if marker:
            needed = marker.args[0] if marker.args else 2
            have = _device_count()
            if have < needed:
                item.add_marker(
                    pytest.mark.skip(
                        reason=f"needs {needed} devices, {have} available"
                    )
                )


@pytest.fixture
def backend():
    """The name of the Keras backend under test."""
    return BACKEND


@pytest.fixture
def repo_root():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
    }[BACKEND]
