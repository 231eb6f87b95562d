"""GradientSwitch: identity forward pass, chosen gradient backward."""

import math

import keras
from keras import ops

__all__ = ["GradientSwitch"]

MODES = ("pass", "stop", "reverse", "scale")


def _factor(mode, scale):
    return {"pass": 1.0, "stop": 0.0, "reverse": -scale, "scale": scale}[mode]


def _check(mode, scale):
    if mode not in MODES:
        raise ValueError(
            f"Unknown GradientSwitch mode {mode!r}: use one of {MODES}."
        )
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise ValueError(
            f"GradientSwitch scale must be a Python float, got {scale!r}."
        )
    if not math.isfinite(scale):
        raise ValueError(f"GradientSwitch scale must be finite, got {scale}.")


@keras.saving.register_keras_serializable(package="keras_cool")
class GradientSwitch(keras.layers.Layer):
    """Identity in the forward pass; multiplies the gradient backward.

    The output is `stop_gradient(x) + s * (x - stop_gradient(x))`: for a
    finite `x` the value is exactly `x`, and the gradient with respect to
    `x` is `s` times the incoming gradient. The factor `s` is 1 (`"pass"`),
    0 (`"stop"`), `-scale` (`"reverse"`, the gradient-reversal layer of
    DANN) or `scale` (`"scale"`). It lives in a non-trainable variable,
    `factor`, so a callback can change it during `fit` without recompiling
    (`set_mode`, or `factor.assign(...)`). Built from `keras.ops` only (no
    `custom_gradient`): the same code and gradient on TensorFlow, JAX and
    torch, in functional models, under jit, and after a safe-mode reload.

    Non-finite inputs: an `inf` or `NaN` entry is passed through unchanged
    (the bare formula would turn `inf` into `NaN`), and its gradient is
    zero in every mode. A `-0.0` may come out as `+0.0` (equal values),
    and subnormal floats come out as zero where the backend flushes them
    (TensorFlow and JAX on CPU do, in this as in any arithmetic op).
    Integer inputs are returned as they are (they carry no gradient).

    On JAX, a callback that assigns `factor` during `fit` must first touch
    `self.model` (e.g. `self.model.get_layer(...)`), so that Keras syncs the
    training state and the new value is not lost.

    Args:
        mode: `"pass"`, `"stop"`, `"reverse"` or `"scale"`. Defaults to
            `"pass"`.
        scale: finite float used by `"reverse"` (factor `-scale`) and
            `"scale"` (factor `scale`); ignored by the other modes.
            Defaults to `1.0`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a float tensor of any shape.

    Returns:
        `inputs`, unchanged in value.

    Example:

    ```python
    switch = keras_cool.layers.GradientSwitch("reverse", scale=0.1)
    x = keras.Input((16,))
    features = keras.layers.Dense(8)(x)
    domain = keras.layers.Dense(1)(switch(features))
    model = keras.Model(x, domain)
    model.compile("sgd", "mse")
    model.fit(np.ones((8, 16)), np.zeros((8, 1)), verbose=0)
    switch.set_mode("reverse", scale=0.5)  # e.g. from a callback
    ```

    Reference:
        Ganin and Lempitsky, "Unsupervised Domain Adaptation by
        Backpropagation", ICML 2015 (gradient reversal); Su Jianlin,
        "巧断梯度：单个loss实现GAN模型", kexue.fm/archives/6387 (2019).
    """

    def __init__(self, mode="pass", scale=1.0, **kwargs):
        super().__init__(**kwargs)
        _check(mode, scale)
        self.mode = mode
        self.scale = float(scale)
        self.supports_masking = True
        self.factor = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(_factor(mode, self.scale)),
            trainable=False,
            dtype="float32",
            name="factor",
        )

    def set_mode(self, mode, scale=None):
        """Change the mode (and scale) in place; takes effect next step."""
        scale = self.scale if scale is None else scale
        _check(mode, scale)
        self.mode, self.scale = mode, float(scale)
        self.factor.assign(_factor(mode, self.scale))

    def call(self, inputs):
        inputs = ops.convert_to_tensor(inputs)
        if not keras.backend.is_float_dtype(inputs.dtype):
            return inputs
        frozen = ops.stop_gradient(inputs)
        factor = ops.cast(self.factor, inputs.dtype)
        switched = frozen + factor * (inputs - frozen)
        return ops.where(ops.isfinite(frozen), switched, frozen)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "scale": self.scale})
        return config
