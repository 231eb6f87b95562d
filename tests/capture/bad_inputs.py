"""Bad inputs of keras_cool.capture (see tests/bad_input_rows.py)."""

import keras

import keras_cool
from tests.bad_input_rows import B
from tests.bad_input_rows import C
from tests.bad_input_rows import Row
from tests.bad_input_rows import X
from tests.bad_input_rows import model_with


def capture_scalar():
    class Scalar(keras.layers.Layer):
        def call(self, x):
            keras_cool.capture("total", keras.ops.sum(x))
            return x

    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(Scalar()(inp)))
    return keras_cool.OutputCapture(model, "total").predict(X, batch_size=4)


def capture_weight_shaped():
    class Kernel(keras.layers.Layer):
        def build(self, shape):
            self.k = self.add_weight(shape=(3, 3))

        def call(self, x):
            keras_cool.capture("kernel", keras.ops.convert_to_tensor(self.k))
            return x

    inp = keras.Input((4,))
    model = keras.Model(inp, Kernel()(inp))
    return keras_cool.OutputCapture(model, "kernel").predict(X, batch_size=4)


def capture_missing_class():
    with keras_cool.OutputCapture(model_with(), keras.layers.Softmax):
        pass


ROWS = [
    Row(
        "oc-model",
        "OutputCapture",
        C,
        lambda: keras_cool.OutputCapture("m", "x"),
        TypeError,
        "model",
    ),
    Row(
        "oc-empty",
        "OutputCapture",
        C,
        lambda: keras_cool.OutputCapture(model_with(), []),
        ValueError,
        "target",
    ),
    Row(
        "oc-target",
        "OutputCapture",
        C,
        lambda: keras_cool.OutputCapture(model_with(), [3]),
        TypeError,
        "target",
    ),
    Row(
        "oc-scalar",
        "OutputCapture",
        B,
        capture_scalar,
        ValueError,
        "no batch axis",
    ),
    Row(
        "oc-weight",
        "OutputCapture",
        B,
        capture_weight_shaped,
        ValueError,
        "no batch axis",
    ),
    Row(
        "oc-class-not-layer",
        "OutputCapture",
        C,
        lambda: keras_cool.OutputCapture(model_with(), dict),
        TypeError,
        "keras.layers.Layer subclass",
    ),
    Row(
        "oc-class-missing",
        "OutputCapture",
        C,
        capture_missing_class,
        ValueError,
        "No layer of class Softmax",
    ),
]
