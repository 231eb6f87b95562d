"""CenterLossDense: a dense classifier that also learns class centres."""

import keras
import numpy as np
from keras import ops

from keras_cool.layers._checks import check_int
from keras_cool.layers._checks import check_weight

__all__ = ["CenterLossDense"]


def _as_float(variable):
    """A scalar variable's value as the shortest float that round-trips."""
    return float(str(np.float32(variable.numpy())))


def _check_label_dtype(labels):
    dtype = keras.backend.standardize_dtype(labels.dtype)
    if "int" not in dtype:
        raise TypeError(
            "CenterLossDense expects integer class ids as `labels`, got "
            f"dtype {dtype} (a float label would be truncated to a wrong "
            'class). Feed integer labels, e.g. `keras.Input((), dtype="int32")`'
            ', or round and cast them: `keras.ops.cast(labels, "int32")`.'
        )


@keras.saving.register_keras_serializable(package="keras_cool")
class CenterLossDense(keras.layers.Layer):
    """Dense logits layer with trainable class centres and a centre loss.

    Returns the logits `inputs @ kernel + bias` (shape `(batch, units)`,
    one per class). When `labels` are given it adds, with `add_loss`,

    `center_weight · mean_batch ‖inputs − centers[label]‖²`

    (squared distance summed over the features), which pulls the features
    of each class towards a learned centre (`layer.centers`, shape
    `(units, features)`) and makes the classes compact. Compile the model
    with the usual classification loss on the logits (e.g.
    `SparseCategoricalCrossentropy(from_logits=True)`); the centre loss is
    added to it.

    `center_weight` lives in a non-trainable `keras.Variable`
    (`layer.center_weight`), so a callback can change it without
    recompiling; it is saved with the weights.

    Labels outside `[0, units)`: when the labels are concrete (an eager
    call, torch's eager `fit`), the layer raises `ValueError`. Inside a
    compiled function (TensorFlow's `tf.function`, JAX's `jit`) values
    cannot be checked in Python, so the centre loss becomes NaN instead
    of silently reading a wrong centre; the NaN shows in the reported
    loss (stop on it with `keras.callbacks.TerminateOnNaN`).

    Args:
        units: int >= 2, the number of classes.
        center_weight: float, initial weight λ of the centre loss.
            Defaults to `0.5`.
        kernel_initializer: initializer of the kernel. Defaults to
            `"glorot_uniform"`.
        bias_initializer: initializer of the bias. Defaults to `"zeros"`.
        centers_initializer: initializer of the class centres. Defaults
            to `"zeros"`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: features, shape `(batch, features)`.
        labels: optional integer class ids, shape `(batch,)` or
            `(batch, 1)`. Without labels (e.g. at prediction time) no loss
            is added.

    Returns:
        Logits, shape `(batch, units)`.

    Example:

    ```python
    images = keras.Input((8, 8, 1))
    labels = keras.Input((), dtype="int32")
    h = keras.layers.Flatten()(images)
    features = keras.layers.Dense(2)(h)
    logits = keras_cool.layers.CenterLossDense(10, center_weight=0.5)(
        features, labels=labels
    )
    model = keras.Model([images, labels], logits)
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = np.random.rand(32, 8, 8, 1)
    y = np.random.randint(0, 10, size=(32,))
    model.fit([x, y], y, epochs=1, verbose=0)
    ```

    Reference:
        Wen et al., "A Discriminative Feature Learning Approach for Deep
        Face Recognition", ECCV 2016; Su Jianlin, "让Keras更酷一些！",
        2018, https://kexue.fm/archives/5765.
    """

    def __init__(
        self,
        units,
        center_weight=0.5,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        centers_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_int("units", units, 2, "CenterLossDense")
        center_weight = check_weight(
            "center_weight", center_weight, "CenterLossDense"
        )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.centers_initializer = keras.initializers.get(centers_initializer)
        self.center_weight = self.add_weight(
            name="center_weight",
            shape=(),
            initializer=keras.initializers.Constant(float(center_weight)),
            trainable=False,
        )

    def __call__(self, inputs, *args, labels=None, **kwargs):
        if labels is not None:
            _check_label_dtype(labels)  # symbolic inputs too
        return super().__call__(inputs, *args, labels=labels, **kwargs)

    def build(self, inputs_shape, labels_shape=None):
        if len(inputs_shape) != 2 or inputs_shape[-1] is None:
            raise ValueError(
                "CenterLossDense expects features of shape (batch, "
                f"features), got {tuple(inputs_shape)}. Flatten them first."
            )
        features = inputs_shape[-1]
        self.kernel = self.add_weight(
            name="kernel",
            shape=(features, self.units),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.units,), initializer=self.bias_initializer
        )
        self.centers = self.add_weight(
            name="centers",
            shape=(self.units, features),
            initializer=self.centers_initializer,
        )

    def _labels(self, inputs, labels):
        shape = tuple(labels.shape)
        if len(shape) == 2 and shape[-1] == 1:
            labels = ops.squeeze(labels, axis=-1)
            shape = shape[:1]
        if len(shape) != 1:
            raise ValueError(
                "CenterLossDense expects `labels` of shape (batch,) or "
                f"(batch, 1) with integer class ids, got {shape}."
            )
        if shape[0] is not None and inputs.shape[0] is not None:
            if shape[0] != inputs.shape[0]:
                raise ValueError(
                    f"CenterLossDense got {inputs.shape[0]} feature rows and "
                    f"{shape[0]} labels; give one label per row."
                )
        _check_label_dtype(labels)
        labels = ops.cast(labels, "int32")
        self._check_range_eagerly(labels)
        return labels

    def _check_range_eagerly(self, labels):
        try:
            values = np.asarray(ops.convert_to_numpy(labels))
        except Exception:  # Symbolic or traced: checked in the graph.
            return
        bad = values[(values < 0) | (values >= self.units)]
        if bad.size:
            raise ValueError(
                f"CenterLossDense(units={self.units}) got labels outside "
                f"[0, {self.units}): {sorted(set(bad.tolist()))[:10]}. Use "
                "integer class ids 0..units-1."
            )

    def call(self, inputs, labels=None):
        logits = ops.matmul(inputs, ops.cast(self.kernel, inputs.dtype))
        logits = logits + ops.cast(self.bias, inputs.dtype)
        if labels is None:
            return logits
        labels = self._labels(inputs, labels)
        valid = ops.logical_and(labels >= 0, labels < self.units)
        safe = ops.where(valid, labels, ops.zeros_like(labels))
        centers = ops.take(ops.cast(self.centers, inputs.dtype), safe, axis=0)
        distance = ops.sum(ops.square(inputs - centers), axis=-1)
        nan = ops.full_like(distance, float("nan"))
        distance = ops.where(valid, distance, nan)
        weight = ops.cast(self.center_weight, inputs.dtype)
        self.add_loss(weight * ops.mean(distance))
        return logits

    def compute_output_shape(self, inputs_shape, labels_shape=None):
        return tuple(inputs_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            center_weight=_as_float(self.center_weight),
            kernel_initializer=keras.initializers.serialize(
                self.kernel_initializer
            ),
            bias_initializer=keras.initializers.serialize(
                self.bias_initializer
            ),
            centers_initializer=keras.initializers.serialize(
                self.centers_initializer
            ),
        )
        return config
