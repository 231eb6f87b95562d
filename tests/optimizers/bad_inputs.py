"""Bad inputs of keras_cool.optimizers (see tests/bad_input_rows.py)."""

import keras

from keras_cool.optimizers.schedules import WarmupSchedule
from tests.bad_input_rows import C
from tests.bad_input_rows import Row

ROWS = [
    Row(
        "ws-schedule",
        "WarmupSchedule",
        C,
        lambda: WarmupSchedule(0.1, 10),
        TypeError,
        "LearningRateSchedule",
    ),
    Row(
        "ws-steps",
        "WarmupSchedule",
        C,
        lambda: WarmupSchedule(
            keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9), 0
        ),
        ValueError,
        "warmup_steps",
    ),
]
