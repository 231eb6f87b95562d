"""Output capture: read intermediate tensors of a Keras 3 model.

`OutputCapture` records the outputs of chosen layers; `capture(name, x)`
tags a tensor inside a layer's `call` so that `OutputCapture` can record
it too. At the top level, `keras_cool.capture` is that function.
"""

from keras_cool.capture.output_capture import OutputCapture
from keras_cool.capture.tag import capture

__all__ = ["OutputCapture", "capture"]
