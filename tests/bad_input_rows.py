"""The row type and shared helpers of the bad-input tables.

Each subpackage's table is `tests/<package>/bad_inputs.py`, a module-level
`ROWS` list (the name keeps pytest from collecting it as a test module);
`tests/test_bad_inputs.py` runs every row. A row gives the exception type,
a message fragment (naming the argument) and the stage where the error
must be raised:

- "construction": the constructor (or the function call) raises;
- "build": building the functional graph raises (symbolic inputs only, no
  data has been seen);
- "on_train_begin": `fit` raises before any training step ran (the test
  checks that the optimizer made no step and no batch ended).

A row runs in an empty current folder: rows that write files use relative
paths. `prepare(monkeypatch)`, when given, runs first (e.g. to hide an
optional package).
"""

import os
from typing import Callable
from typing import NamedTuple
from typing import Optional

import keras
import numpy as np

NAN = float("nan")
X = np.random.RandomState(0).rand(8, 4).astype("float32")
Y = np.random.RandomState(1).rand(8, 2).astype("float32")

C = "construction"
B = "build"
T = "on_train_begin"
STAGES = (C, B, T)


class Row(NamedTuple):
    id: str
    obj: str  # the public object the row is about
    stage: str
    run: Callable
    error: type
    fragment: str
    prepare: Optional[Callable] = None  # prepare(monkeypatch), run first


def model_with(*layers_between):
    inp = keras.Input((4,))
    h = inp
    for layer in layers_between:
        h = layer(h)
    out = keras.layers.Dense(2)(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def fit_with(callback, model=None, x=X, y=Y, extra=None, **kwargs):
    """A fit plan: (model, callbacks, fit kwargs); `extra` is a callback
    listed after `callback`."""
    model = model or model_with()
    callbacks = [callback] + ([extra] if extra is not None else [])
    return model, callbacks, dict(x=x, y=y, **kwargs)


def symbolic(*shapes, dtype="float32"):
    return [keras.Input(s, dtype=dtype) for s in shapes]


def not_a_folder():
    """A path below a file (in the current folder), so no folder can be
    made there."""
    with open("file", "w") as f:
        f.write("x")
    return os.path.join("file", "sub", "x")
