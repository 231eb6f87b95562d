"""PositionEmbedding: adds a learned vector per position."""

import keras
from keras import ops

from keras_cool.layers._checks import check_int

__all__ = ["PositionEmbedding"]


@keras.saving.register_keras_serializable(package="keras_cool")
class PositionEmbedding(keras.layers.Layer):
    """Adds a trainable embedding of each position to a sequence.

    For an input of shape `(batch, length, dim)` the output is
    `inputs + embeddings[:length]`, where `embeddings` has shape
    `(sequence_length, dim)`: BERT's absolute position embeddings (and
    bert4keras's `PositionEmbedding(merge_mode="add")`). Shorter inputs use
    the first rows; `length` may vary from call to call.

    Args:
        sequence_length: int >= 1, the longest sequence the layer accepts
            (BERT's `max_position_embeddings`).
        initializer: initializer of the embeddings. Defaults to `"zeros"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a float tensor `(batch, length, dim)` with
            `length <= sequence_length`.

    Returns:
        A tensor of the same shape as `inputs`.

    Example:

    ```python
    tokens = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(1000, 64)(tokens)
    x = keras_cool.layers.PositionEmbedding(512)(x)
    model = keras.Model(tokens, x)
    model.predict(np.array([[1, 2, 3]]), verbose=0).shape  # (1, 3, 64)
    ```

    Reference:
        Devlin et al., "BERT: Pre-training of Deep Bidirectional
        Transformers for Language Understanding" (2019),
        https://arxiv.org/abs/1810.04805.
    """

    def __init__(self, sequence_length, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = check_int(
            "sequence_length", sequence_length, 1, "PositionEmbedding"
        )
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "PositionEmbedding expects inputs (batch, length, dim) with "
                f"a known dim, got shape {input_shape}."
            )
        length = input_shape[1]
        if length is not None and length > self.sequence_length:
            raise ValueError(
                f"PositionEmbedding(sequence_length={self.sequence_length}) "
                f"got inputs of length {length}; raise sequence_length or "
                "truncate the inputs."
            )
        self.embeddings = self.add_weight(
            shape=(self.sequence_length, input_shape[-1]),
            initializer=self.initializer,
            name="embeddings",
        )

    def call(self, inputs):
        length = ops.shape(inputs)[1]
        positions = self.embeddings[:length]
        return inputs + ops.cast(positions, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "initializer": keras.initializers.serialize(self.initializer),
            }
        )
        return config
