"""BiasAdd: adds a trainable bias along the last axis."""

import keras

__all__ = ["BiasAdd"]


@keras.saving.register_keras_serializable(package="keras_cool")
class BiasAdd(keras.layers.Layer):
    """Adds a trainable bias vector to the last axis of its input.

    The output bias of a head whose matrix lives elsewhere, such as BERT's
    masked-language-model logits computed with the transposed word
    embedding (`keras.layers.ReversibleEmbedding(..., reverse=True)`
    followed by `BiasAdd`, Google's `cls/predictions/output_bias`).

    Args:
        initializer: initializer of the bias. Defaults to `"zeros"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a float tensor `(..., units)`.

    Returns:
        `inputs + bias`, same shape.

    Example:

    ```python
    embedding = keras.layers.ReversibleEmbedding(1000, 64)
    tokens = keras.Input((None,), dtype="int32")
    hidden = embedding(tokens)
    logits = keras_cool.layers.BiasAdd()(embedding(hidden, reverse=True))
    model = keras.Model(tokens, logits)
    model.predict(np.array([[1, 2, 3]]), verbose=0).shape  # (1, 3, 1000)
    ```
    """

    def __init__(self, initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        if not input_shape or input_shape[-1] is None:
            raise ValueError(
                f"BiasAdd needs a known last axis, got shape {input_shape}."
            )
        self.bias = self.add_weight(
            shape=(input_shape[-1],), initializer=self.initializer, name="bias"
        )

    def call(self, inputs):
        return inputs + keras.ops.cast(self.bias, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["initializer"] = keras.initializers.serialize(self.initializer)
        return config
