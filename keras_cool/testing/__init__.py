"""keras_cool.testing: test a Keras layer in one call, on any backend."""

from keras_cool.testing.layer_test import run_layer_test
from keras_cool.testing.layer_test import run_model_saving_test
from keras_cool.testing.layer_test import run_serialization_test

__all__ = [
    "run_layer_test",
    "run_model_saving_test",
    "run_serialization_test",
]
