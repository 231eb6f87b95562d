"""GaussianMixturePrior: the prior and clustering losses of a VAE."""

import keras
import numpy as np
from keras import ops

from keras_cool.layers._checks import check_int
from keras_cool.layers._checks import check_weight

__all__ = ["GaussianMixturePrior"]

_EPSILON = 1e-7


def _as_float(variable):
    """A scalar variable's value as the shortest float that round-trips."""
    return float(str(np.float32(variable.numpy())))


def _check_probabilities(y_prob):
    """Refuses logits: symbolically from the producing layer, eagerly from
    the values (rows in [0, 1] summing to 1)."""
    history = getattr(y_prob, "_keras_history", None)
    layer = getattr(history, "operation", None)
    activation = getattr(layer, "activation", None)
    if activation is not None and getattr(activation, "__name__", "") in (
        "linear",
    ):
        raise ValueError(
            "GaussianMixturePrior expects `y_prob` to be class "
            f"probabilities, but it comes from {layer.name!r} with a linear "
            'activation (logits). Use activation="softmax".'
        )
    try:
        values = np.asarray(ops.convert_to_numpy(y_prob), "float64")
    except Exception:  # symbolic or traced: not checkable here
        return
    if values.size == 0:
        return
    rows = values.reshape(-1, values.shape[-1])
    if (
        not np.isfinite(rows).all()
        or rows.min() < -1e-6
        or rows.max() > 1 + 1e-6
        or np.abs(rows.sum(-1) - 1).max() > 1e-3
    ):
        raise ValueError(
            "GaussianMixturePrior expects `y_prob` to be class "
            "probabilities (rows in [0, 1] summing to 1), got values in "
            f"[{rows.min():.3g}, {rows.max():.3g}] with row sums up to "
            f"{rows.sum(-1).max():.3g}: logits? Apply a softmax first."
        )


@keras.saving.register_keras_serializable(package="keras_cool")
class GaussianMixturePrior(keras.layers.Layer):
    """Mixture-of-Gaussians prior of a clustering VAE, with its losses.

    The prior `q(z|y) = N(μ_y, I)`, `q(y)` uniform over `num_classes`
    clusters, of the one-step clustering VAE. The layer owns the
    trainable class means `μ` (`layer.means`, shape
    `(num_classes, latent_dim)`; decode `μ_y + ε` to generate from
    cluster `y`) and adds scalar losses with `add_loss`, given the
    posterior `p(z|x) = N(m, diag s²)` and the classifier `p(y|z)`:

    - clustering: `kl_weight · mean_batch Σ_y p(y|z) ·
      KL(N(m, s²) ‖ N(μ_y, I))`, with the KL in closed form,
      `½ Σ_d (s² + (m − μ_y)² − 1 − log s²)`;
    - balance: `balance_weight · mean_batch KL(p(y|z) ‖ uniform)`
      `= mean_batch Σ_y p log(K p)`. It keeps each sample's assignment
      soft; with both weights at 1 the best `p(y|z)` is the Bayes
      posterior `∝ exp(−KL_y)`. Set it to 0 to drop it.
    - marginal balance (off by default): `marginal_weight ·
      KL(mean_batch p(y|z) ‖ uniform)`. The per-sample term above does
      not stop two clusters from merging while another one empties; this
      batch-level term does, when the clusters are known to be about
      equally frequent. Use batches several times larger than
      `num_classes` so the batch mean estimates the cluster sizes.

    This replaces the `N(0, I)` KL term of a plain VAE: sample `z` with
    `VariationalSampling(beta=0.0)` and let this layer add the prior.
    The weights are non-trainable `keras.Variable`s (`layer.kl_weight`,
    `layer.balance_weight`, `layer.marginal_weight`), so a callback can
    anneal them without recompiling; they are saved with the weights.
    The losses are the same in training and inference, so `val_loss` is
    comparable to `loss`.

    The layer returns the class probabilities unchanged, so they can be a
    model output (and the layer stays connected to the model).

    Args:
        num_classes: int >= 2, the number of clusters K.
        means_initializer: initializer of the class means: small random
            means break the symmetry between clusters. To start from
            k-means centres, assign them after building:
            `layer.means.assign(centres)`. Defaults to `"random_normal"`.
        kl_weight: float, initial weight of the clustering KL term.
            Defaults to `1.0`.
        balance_weight: float, initial weight of KL(p(y|z) ‖ uniform).
            Defaults to `1.0`.
        marginal_weight: float, initial weight of the batch-level
            KL(mean_batch p(y|z) ‖ uniform); 0 turns it off. Defaults to
            `0.0`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: list `[z_mean, z_log_var, y_prob]`: the posterior mean and
            log-variance, both `(batch, latent_dim)`, and the class
            probabilities `(batch, num_classes)` (a softmax output).

    Returns:
        `y_prob`, unchanged.

    Example:

    ```python
    x = keras.Input((64,))
    h = keras.layers.Dense(32, activation="relu")(x)
    z_mean = keras.layers.Dense(10)(h)
    z_log_var = keras.layers.Dense(10)(h)
    z = keras_cool.layers.VariationalSampling(beta=0.0)([z_mean, z_log_var])
    y = keras.layers.Dense(10, activation="softmax")(z)
    prior = keras_cool.layers.GaussianMixturePrior(num_classes=10)
    y = prior([z_mean, z_log_var, y])
    x_hat = keras.layers.Dense(64, activation="sigmoid")(z)
    model = keras.Model(x, [x_hat, y])
    model.compile("adam", loss=["mse", None])
    data = np.random.rand(32, 64)
    model.fit(data, data, epochs=1, verbose=0)
    z3 = prior.means[3][None] + keras.random.normal((4, 10))  # cluster 3
    ```

    Reference:
        Su Jianlin, "变分自编码器（四）：一步到位的聚类方案", 2018,
        https://kexue.fm/archives/5887; Jiang et al., "Variational Deep
        Embedding (VaDE)", IJCAI 2017.
    """

    def __init__(
        self,
        num_classes,
        means_initializer="random_normal",
        kl_weight=1.0,
        balance_weight=1.0,
        marginal_weight=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "GaussianMixturePrior"
        self.num_classes = check_int("num_classes", num_classes, 2, owner)
        kl_weight = check_weight("kl_weight", kl_weight, owner)
        balance_weight = check_weight("balance_weight", balance_weight, owner)
        marginal_weight = check_weight(
            "marginal_weight", marginal_weight, owner
        )
        self.means_initializer = keras.initializers.get(means_initializer)
        self.kl_weight = self._weight_variable("kl_weight", kl_weight)
        self.balance_weight = self._weight_variable(
            "balance_weight", balance_weight
        )
        self.marginal_weight = self._weight_variable(
            "marginal_weight", marginal_weight
        )

    def _weight_variable(self, name, value):
        return self.add_weight(
            name=name,
            shape=(),
            initializer=keras.initializers.Constant(float(value)),
            trainable=False,
        )

    def _check_shapes(self, mean_shape, log_var_shape, prob_shape):
        mean_shape, log_var_shape = tuple(mean_shape), tuple(log_var_shape)
        prob_shape = tuple(prob_shape)
        if len(mean_shape) != 2 or mean_shape != log_var_shape:
            raise ValueError(
                "GaussianMixturePrior expects z_mean and z_log_var of the "
                "same shape (batch, latent_dim), got "
                f"{mean_shape} and {log_var_shape}."
            )
        if len(prob_shape) != 2 or prob_shape[-1] != self.num_classes:
            raise ValueError(
                "GaussianMixturePrior expects y_prob of shape (batch, "
                f"num_classes={self.num_classes}), got {prob_shape}. Give "
                "the classifier as many units as the prior has classes."
            )

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, (list, tuple)) and len(inputs) == 3:
            _check_probabilities(inputs[2])  # symbolic or concrete
        return super().__call__(inputs, *args, **kwargs)

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 3:
            raise ValueError(
                "GaussianMixturePrior expects a list [z_mean, z_log_var, "
                f"y_prob], got input shape {input_shape}."
            )
        self._check_shapes(*input_shape)
        self.means = self.add_weight(
            name="means",
            shape=(self.num_classes, input_shape[0][-1]),
            initializer=self.means_initializer,
            trainable=True,
        )

    def _kl_to_uniform(self, prob):
        log_prob = ops.log(ops.clip(prob, _EPSILON, 1.0))
        return ops.sum(prob * (log_prob + ops.log(float(self.num_classes))), -1)

    def call(self, inputs):
        z_mean, z_log_var, y_prob = inputs
        self._check_shapes(z_mean.shape, z_log_var.shape, y_prob.shape)
        means = ops.cast(self.means, z_mean.dtype)
        # KL(N(m, s^2) || N(mu_y, I)) for every sample and class: (batch, K).
        spread = ops.sum(ops.exp(z_log_var) - 1.0 - z_log_var, axis=-1)
        distance = ops.sum(
            ops.square(z_mean[:, None, :] - means[None, :, :]), axis=-1
        )
        kl = 0.5 * (spread[:, None] + distance)
        prob = ops.cast(y_prob, kl.dtype)
        cluster = ops.mean(ops.sum(prob * kl, axis=-1))
        balance = ops.mean(self._kl_to_uniform(prob))
        marginal = self._kl_to_uniform(ops.mean(prob, axis=0))
        self.add_loss(ops.cast(self.kl_weight, kl.dtype) * cluster)
        self.add_loss(ops.cast(self.balance_weight, kl.dtype) * balance)
        self.add_loss(ops.cast(self.marginal_weight, kl.dtype) * marginal)
        return y_prob

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            means_initializer=keras.initializers.serialize(
                self.means_initializer
            ),
            kl_weight=_as_float(self.kl_weight),
            balance_weight=_as_float(self.balance_weight),
            marginal_weight=_as_float(self.marginal_weight),
        )
        return config
