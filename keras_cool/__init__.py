"""keras_cool: multi-backend Keras 3 add-ons.

Import public objects from here or from the subpackages
(`keras_cool.layers`, `keras_cool.callbacks`, `keras_cool.capture`,
`keras_cool.data`, `keras_cool.losses`, `keras_cool.models`,
`keras_cool.optimizers`, `keras_cool.testing`, `keras_cool.utils`).
`keras_cool.capture` as an attribute is the function `capture`;
`from keras_cool.capture import OutputCapture, capture` reads the
subpackage.
"""

from keras_cool import callbacks
from keras_cool import data
from keras_cool import layers
from keras_cool import losses
from keras_cool import models
from keras_cool import optimizers
from keras_cool import testing
from keras_cool import utils
from keras_cool.callbacks import ExponentialMovingAverage
from keras_cool.capture import OutputCapture
from keras_cool.capture import capture
from keras_cool.data import Sequence
from keras_cool.version import __version__

__all__ = [
    "ExponentialMovingAverage",
    "OutputCapture",
    "Sequence",
    "__version__",
    "callbacks",
    "capture",
    "data",
    "layers",
    "losses",
    "models",
    "optimizers",
    "testing",
    "utils",
]
