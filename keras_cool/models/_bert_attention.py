"""`BertAttention`: `MultiHeadAttention` with a fused kernel at inference.

Keras's `MultiHeadAttention` takes its explicit softmax path whenever it
has attention dropout, in training and at inference alike. Attention
dropout is the identity at inference, so on torch this subclass hands
inference calls to `keras.ops.dot_product_attention` (torch's fused
`scaled_dot_product_attention`), as transformers' BERT does, and keeps
Keras's own path for training, for `return_attention_scores=True` (which
`keras_cool.OutputCapture` asks for when it records the attention
probabilities), for causal masks, and on JAX and TensorFlow, where the
two paths run the same ops (`_backend.fused_attention_pays`).
`_compute_attention` is the override point Keras documents for this.
"""

import math

import keras
from keras import ops

from keras_cool._backend import fused_attention_pays

__all__ = ["BertAttention"]


@keras.saving.register_keras_serializable(package="keras_cool")
class BertAttention(keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention`, fused at inference on torch.

    Same arguments, weights, config and results (to float rounding) as
    `MultiHeadAttention`; a query position whose keys are all masked
    outputs zeros before the output projection, as there.
    """

    def _compute_attention(
        self,
        query,
        key,
        value,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
        **kwargs,
    ):
        if (
            training
            or not fused_attention_pays()
            or return_attention_scores
            or kwargs.get("use_causal_mask")
            or len(query.shape) != 4
        ):
            return super()._compute_attention(
                query,
                key,
                value,
                attention_mask,
                training,
                return_attention_scores,
                **kwargs,
            )
        mask = kept = None
        if attention_mask is not None:
            keep = ops.cast(attention_mask, "bool")  # (batch, T or 1, S)
            kept = ops.any(keep, axis=-1, keepdims=True)
            # A row without keys attends everywhere, then is zeroed below.
            mask = ops.expand_dims(ops.logical_or(keep, ~kept), 1)
        output = ops.dot_product_attention(
            query,
            key,
            value,
            mask=mask,
            scale=1.0 / math.sqrt(self.key_dim),
        )
        if kept is not None:  # (batch, T or 1, 1, 1) against (B, T, N, H)
            output = ops.where(ops.expand_dims(kept, -1), output, 0.0)
        return output, None
