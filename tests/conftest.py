"""Shared pytest setup: one suite for the TensorFlow, JAX and torch backends.

Markers:
    backends("jax", "torch"): run only on these backends.
    multi_device(n): needs at least n devices, skipped otherwise (on the
        CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=2 for JAX).
    slow: runs a whole example or benchmark script.
"""

import os

import keras
import pytest

BACKEND = keras.backend.backend()


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
