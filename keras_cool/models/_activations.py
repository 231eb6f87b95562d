"""BERT's `hidden_act` names, mapped to Keras activations.

The names follow HuggingFace transformers (`ACT2FN`): `"gelu"` is the
exact (erf) GELU, `"gelu_new"` the tanh approximation. Google's
`modeling.py` called its tanh form `"gelu"` after February 2019; a
Google checkpoint trained with it should set `hidden_act="gelu_new"`.
"""

import keras
from keras import ops

__all__ = ["activation", "ACTIVATION_NAMES"]


@keras.saving.register_keras_serializable(package="keras_cool")
def gelu_tanh(x):
    """GELU, tanh approximation (HF `gelu_new`, keras-hub's BERT)."""
    return ops.gelu(x, approximate=True)


@keras.saving.register_keras_serializable(package="keras_cool")
def quick_gelu(x):
    """`x * sigmoid(1.702 x)` (HF `quick_gelu`)."""
    return x * ops.sigmoid(1.702 * x)


# hidden_act -> Keras activation (a Keras name or a registered function).
_ACTIVATIONS = {
    "gelu": "gelu",  # keras.activations.gelu: approximate=False, erf
    "gelu_python": "gelu",
    "gelu_new": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "quick_gelu": quick_gelu,
    "relu": "relu",
    "silu": "silu",
    "swish": "silu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "linear": "linear",
}
ACTIVATION_NAMES = tuple(_ACTIVATIONS)


def activation(name):
    """The Keras activation for a `hidden_act` name."""
    if name not in _ACTIVATIONS:
        raise ValueError(
            f"Unknown hidden_act {name!r}: use one of {ACTIVATION_NAMES} "
            '("gelu" is the exact erf GELU, "gelu_new" the tanh form).'
        )
    return _ACTIVATIONS[name]
