"""Bad inputs of keras_cool.losses (see tests/bad_input_rows.py)."""

import numpy as np

from keras_cool import losses as kloss
from tests.bad_input_rows import C
from tests.bad_input_rows import Row


def gan(fn, **kwargs):
    real = np.zeros((2, 1), "float32")
    return fn(real, real, **kwargs)


ROWS = [
    Row(
        "gan-smoothing-3",
        "losses",
        C,
        lambda: gan(kloss.minimax_discriminator_loss, label_smoothing=3),
        ValueError,
        "label_smoothing",
    ),
    Row(
        "gan-smoothing-neg",
        "losses",
        C,
        lambda: gan(kloss.modified_discriminator_loss, label_smoothing=-0.1),
        ValueError,
        "label_smoothing",
    ),
    Row(
        "gan-smoothing-gen",
        "losses",
        C,
        lambda: kloss.modified_generator_loss(
            np.zeros((2, 1)), label_smoothing=2
        ),
        ValueError,
        "label_smoothing",
    ),
    Row(
        "gan-smoothing-str",
        "losses",
        C,
        lambda: gan(kloss.minimax_discriminator_loss, label_smoothing="0.1"),
        TypeError,
        "label_smoothing",
    ),
    Row(
        "gan-shapes",
        "losses",
        C,
        lambda: kloss.relativistic_standard_discriminator_loss(
            np.zeros((2, 1)), np.zeros((3, 1))
        ),
        ValueError,
        "same shape",
    ),
    Row(
        "gan-shapes-generator",
        "losses",
        C,
        lambda: kloss.relativistic_standard_generator_loss(
            np.zeros((2, 1)), np.zeros((3, 1))
        ),
        ValueError,
        "same shape",
    ),
]
