"""keras_cool.data: data pipelines for `model.fit`."""

from keras_cool.data.sequence import Sequence

__all__ = ["Sequence"]
