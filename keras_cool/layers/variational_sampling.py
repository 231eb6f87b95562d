"""VariationalSampling: reparameterised sample plus the KL term of a VAE."""

import keras
import numpy as np
from keras import ops

from keras_cool.layers._checks import check_weight

__all__ = ["VariationalSampling"]


def _check_pair(mean_shape, log_var_shape):
    if tuple(mean_shape) != tuple(log_var_shape):
        raise ValueError(
            "VariationalSampling expects `[mean, log_var]` of the same shape, "
            f"got {tuple(mean_shape)} and {tuple(log_var_shape)}. Produce both "
            "with layers of the same size (e.g. two Dense(latent_dim))."
        )


def _as_float(variable):
    """A scalar variable's value as the shortest float that round-trips."""
    return float(str(np.float32(variable.numpy())))


@keras.saving.register_keras_serializable(package="keras_cool")
class VariationalSampling(keras.layers.Layer):
    """Reparameterised Gaussian sample; adds β·KL(N(μ, σ²) ‖ N(0, I)).

    The layer of a variational autoencoder that sits between the encoder
    and the decoder. It takes the posterior mean `μ` and log-variance
    `log σ²` and returns `z = μ + exp(log σ² / 2) · ε` with
    `ε ~ N(0, I)` drawn from the layer's own `keras.random.SeedGenerator`.
    It adds one scalar loss with `add_loss`:

    `β · mean_batch Σ_d ½ (μ² + σ² − 1 − log σ²)`

    (the KL divergence to the standard normal prior, summed over the
    latent axes and averaged over the batch). Because the loss is added
    inside `call`, it works in functional models on every backend (Keras
    3 has no model-level `add_loss` on symbolic tensors).

    `β` lives in a non-trainable `keras.Variable`, `layer.beta`, so a
    callback can anneal it without recompiling
    (`layer.beta.assign(0.5)`, e.g. in `on_epoch_begin`). It is saved
    with the model's weights, so a reloaded model keeps the annealed
    value; `get_config()["beta"]` reports the current value.

    When not training (`training=False`: `predict`, `evaluate`, a plain
    call) the layer returns the mean `μ` instead of a sample, so outputs
    are deterministic, and it still adds the KL term, so `val_loss` and
    `evaluate` report the same objective as `fit` (without sampling
    noise in the encoder; the KL itself is exact in both modes).

    Args:
        beta: float, initial weight of the KL term (the β of β-VAE).
            Defaults to `1.0`.
        seed: optional int, seed of the sampling noise. Defaults to `None`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[mean, log_var]`, two tensors of the same shape
            `(batch, ..., latent_dim)`.
        training: bool; sample when True, return `mean` when False.

    Returns:
        A tensor shaped like `mean`.

    Example:

    ```python
    x = keras.Input((64,))
    h = keras.layers.Dense(128, activation="relu")(x)
    z_mean = keras.layers.Dense(8)(h)
    z_log_var = keras.layers.Dense(8)(h)
    z = keras_cool.layers.VariationalSampling(beta=1.0, seed=0)(
        [z_mean, z_log_var]
    )
    x_hat = keras.layers.Dense(64, activation="sigmoid")(z)
    vae = keras.Model(x, x_hat)
    vae.compile("adam", loss="binary_crossentropy")  # + the KL term
    data = np.random.rand(32, 64)
    vae.fit(data, data, epochs=1, verbose=0)
    ```

    Reference:
        Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014;
        Higgins et al., "β-VAE", ICLR 2017.
    """

    def __init__(self, beta=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        beta = check_weight("beta", beta, "VariationalSampling")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.beta = self.add_weight(
            name="beta",
            shape=(),
            initializer=keras.initializers.Constant(beta),
            trainable=False,
        )

    def build(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or not isinstance(input_shape[0], (list, tuple))
        ):
            raise ValueError(
                "VariationalSampling expects a list `[mean, log_var]` of two "
                f"tensors, got input shape {input_shape}."
            )
        _check_pair(*input_shape)
        self.built = True

    def call(self, inputs, training=None):
        mean, log_var = inputs
        _check_pair(mean.shape, log_var.shape)
        kl = 0.5 * (ops.square(mean) + ops.exp(log_var) - 1.0 - log_var)
        kl = ops.sum(ops.reshape(kl, (ops.shape(kl)[0], -1)), axis=-1)
        self.add_loss(ops.cast(self.beta, kl.dtype) * ops.mean(kl))
        if not training:
            return mean
        noise = keras.random.normal(
            ops.shape(mean), dtype=mean.dtype, seed=self.seed_generator
        )
        return mean + ops.exp(0.5 * log_var) * noise

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(beta=_as_float(self.beta), seed=self.seed)
        return config
