"""AdversarialObjective: a GAN's D and G objectives as one loss."""

import keras
from keras import ops

from keras_cool._layer_tree import layer_paths
from keras_cool.layers._checks import check_weight
from keras_cool.layers.gradient_switch import GradientSwitch
from keras_cool.losses.gan import ALIASES
from keras_cool.losses.gan import OBJECTIVES

__all__ = ["AdversarialObjective"]


def _check_pair_shapes(input_shape):
    """Real and generated samples must have the same per-sample shape."""
    try:
        real, generated = (tuple(s) for s in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            "AdversarialObjective expects [real_samples, generated_samples], "
            f"got input shape {input_shape}."
        ) from None
    if len(real) != len(generated) or any(
        a is not None and b is not None and a != b
        for a, b in zip(real[1:], generated[1:])
    ):
        raise ValueError(
            "AdversarialObjective: real_samples and generated_samples must "
            f"have the same shape per sample, got {real} and {generated}. "
            "Make the generator output what the discriminator reads."
        )


@keras.saving.register_keras_serializable(package="keras_cool")
class AdversarialObjective(keras.layers.Layer):
    """Adds one loss that trains a GAN's discriminator and generator at once.

    Called on `[real_samples, generated_samples]`, with the generated
    samples still connected to the generator, it runs the discriminator and
    adds (with `add_loss`) one scalar loss `L` whose gradient is exactly

    - `∂L/∂θ_D = ∂L_D/∂θ_D` for the discriminator's weights, and
    - `∂L/∂θ_G = generator_weight · ∂L_G/∂θ_G` for the generator's,

    with no leakage between them, so one `compile(optimizer)` + `fit` is one
    simultaneous D and G update (Su Jianlin's single-loss GAN), and
    `generator_weight` is the G:D learning-rate ratio λ. Nothing toggles
    `trainable`, no second model or optimizer, no `custom_gradient`.

    Two constructions, both from `GradientSwitch` (`passes`):

    - **3 passes, exact for every loss**: `D(x_real)`, `D(stop(G(z)))` and
      `D_frozen(scale_λ(G(z)))` (the first two in one call on the joined
      batch, see `separate_batches`), with
      `L = L_D(d_real, d_stop) + L_G(stop(d_real), d_gen)`. `D_frozen` is the
      discriminator run through `stateless_call` with its weights behind
      `stop_gradient`, so `L_G` sends no gradient to θ_D (nothing relies on
      two gradients cancelling) and only `d_gen` reaches G, scaled by λ.
      The loss shown by `fit` is `L_D + L_G`.
    - **2 passes, gradient reversal**: `D(x_real)`, `D(reverse_λ(G(z)))`
      (one call on the joined batch, see `separate_batches`),
      `L = L_D(d_real, d_gen)`. Exact only where `L_G` is minus the
      generated-data term of `L_D`: `"minimax"` and `"wasserstein"`, whose
      default is 2 passes. Every other loss needs 3; asking for 2 raises.
      The loss shown by `fit` is `L_D`.

    | loss | D / G losses | passes |
    |---|---|---|
    | `"minimax"` | `minimax_*` | 2 (or 3) |
    | `"modified"` (`"non_saturating"`) | `modified_*` | 3 |
    | `"wasserstein"` | `wasserstein_*` | 2 (or 3) |
    | `"hinge"` (`"wasserstein_hinge"`) | `wasserstein_hinge_*` | 3 |
    | `"least_squares"` | `least_squares_*` | 3 |
    | `"rsgan"` | `relativistic_*` | 3 |
    | `"rasgan"` | `relativistic_average_*` | 3 |
    | `"ralsgan"` | `relativistic_average_least_squares_*` | 3 |

    No label smoothing is applied. Real and generated samples go through
    the discriminator in one call on the joined batch (as keras.io's GAN
    does), which is the same computation as two calls when no layer mixes
    samples, and fewer, larger kernels. A discriminator with a
    `BatchNormalization` layer gets separate calls instead, so that each
    batch is normalised on its own (as in the seed post, and consistent
    with the generator's pass); set `separate_batches=True` for other
    layers that mix samples. BatchNorm moving averages are updated by the
    real and `stop` passes, not by the generator's pass. Dropout in D draws
    a new mask per pass: with 3 passes this changes no routing (G's pass is
    already cut off from θ_D), but the generator then sees a different
    mask than the discriminator's fake pass, as in alternating training.
    A gradient penalty is not included.

    Cost: the simultaneous update needs one generator forward pass per
    step, where an alternating D-then-G step needs two; the discriminator
    work is the same (3 forward passes, 2 with gradient reversal). So the
    gain is largest when the generator dominates the step (at most 4/3
    when it does all the work). Measured in `benchmarks/single_loss_gan.py`.

    Args:
        discriminator: a Keras model or layer mapping samples to outputs
            (logits for the sigmoid losses).
        loss: one of the names in the table above.
        generator_weight: λ ≥ 0, the generator's gradient factor (its
            learning rate relative to the discriminator's). It lives in
            `generator_switch.factor` and can be changed during `fit`.
        passes: `2`, `3`, or `None` for the fewest exact for `loss`.
        separate_batches: `True` runs the discriminator on real and
            generated samples in separate calls, `False` in one call on the
            joined batch; `None` (default) picks separate calls if and only
            if the discriminator contains a `BatchNormalization` layer.
            Gradients are exact either way; only layers that mix samples
            across the batch see a difference.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: `[real_samples, generated_samples]`, same batch size.
        training: passed to the discriminator.

    Returns:
        `(d_real, d_generated)`: the discriminator's outputs.

    Example:

    ```python
    x_real = keras.Input((2,))
    z = keras.Input((8,))
    objective = keras_cool.layers.AdversarialObjective(
        discriminator, loss="modified", generator_weight=1.0
    )
    model = keras.Model([x_real, z], objective([x_real, generator(z)]))
    model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    model.fit([x, noise], epochs=10, batch_size=256)
    ```

    Reference:
        Su Jianlin, "巧断梯度：单个loss实现GAN模型", kexue.fm/archives/6387
        (2019); Ganin and Lempitsky, ICML 2015 (gradient reversal).
    """

    # The names `loss` accepts (aliases aside), e.g. for a CLI's choices.
    LOSSES = tuple(sorted(OBJECTIVES))

    def __init__(
        self,
        discriminator,
        loss="modified",
        generator_weight=1.0,
        passes=None,
        separate_batches=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        name = ALIASES.get(loss, loss)
        if name not in OBJECTIVES:
            valid = sorted(OBJECTIVES) + sorted(ALIASES)
            raise ValueError(f"Unknown GAN loss {loss!r}: use one of {valid}.")
        objective = OBJECTIVES[name]
        two_pass_ok = objective.reversal_exact
        if passes is None:
            passes = 2 if two_pass_ok else 3
        if passes not in (2, 3):
            raise ValueError(f"passes must be 2, 3 or None, got {passes!r}.")
        if passes == 2 and not two_pass_ok:
            raise ValueError(
                f"loss={loss!r} needs passes=3: its generator loss is not "
                "minus the discriminator's generated-data term, so the "
                "2-pass gradient-reversal form would not be exact. 2 passes "
                "work for 'minimax' and 'wasserstein'."
            )
        generator_weight = check_weight(
            "generator_weight", generator_weight, "AdversarialObjective"
        )
        if not callable(discriminator):
            raise TypeError(
                "AdversarialObjective: `discriminator` must be a Keras "
                f"model or layer, got {discriminator!r}."
            )
        self.discriminator = discriminator
        self.loss = loss
        self.generator_weight = float(generator_weight)
        self.passes = passes
        if separate_batches not in (None, True, False):
            raise ValueError(
                "separate_batches must be True, False or None (auto), got "
                f"{separate_batches!r}."
            )
        self.separate_batches = separate_batches
        self._has_batch_norm = None
        self._d_loss, self._g_loss = objective.d_loss, objective.g_loss
        mode = "reverse" if passes == 2 else "scale"
        self.generator_switch = GradientSwitch(
            mode, scale=self.generator_weight, name="generator_switch"
        )

    def build(self, input_shape):
        _check_pair_shapes(input_shape)
        if not self.discriminator.built:
            self.discriminator.build(input_shape[0])
        self.built = True

    def _separate(self):
        if self.separate_batches is not None:
            return self.separate_batches
        if self._has_batch_norm is None:  # looked up once, on first call
            self._has_batch_norm = any(
                isinstance(layer, keras.layers.BatchNormalization)
                for layer, _ in layer_paths(self.discriminator).values()
            )
        return self._has_batch_norm

    def _discriminate(self, real, generated, training):
        """`D(real), D(generated)`: two calls, or one on the joined batch."""
        if self._separate():
            return (
                self.discriminator(real, training=training),
                self.discriminator(generated, training=training),
            )
        joined = ops.concatenate([real, generated], axis=0)
        scores = self.discriminator(joined, training=training)
        n = ops.shape(real)[0]
        return scores[:n], scores[n:]

    def compute_objective(self, real, generated, training=None):
        """Return `(loss, d_real, d_generated)` without `add_loss`."""
        if self.passes == 2:
            switched = self.generator_switch(generated)
            d_real, d_gen = self._discriminate(real, switched, training)
            return self._d_loss(d_real, d_gen), d_real, d_gen
        # A constant stop (not a switch whose factor is a variable), so
        # that no backward pass through D is computed for this pass at all.
        d_real, d_stop = self._discriminate(
            real, ops.stop_gradient(generated), training
        )
        # The generator's pass sees D's weights as constants: no gradient
        # reaches θ_D from L_G (and D's state, e.g. BatchNorm statistics,
        # is not updated by this pass).
        d_gen, _ = self.discriminator.stateless_call(
            [
                ops.stop_gradient(v)
                for v in self.discriminator.trainable_variables
            ],
            [
                ops.convert_to_tensor(v)
                for v in self.discriminator.non_trainable_variables
            ],
            self.generator_switch(generated),
            training=training,
        )
        loss = self._d_loss(d_real, d_stop)
        loss = loss + self._g_loss(ops.stop_gradient(d_real), d_gen)
        return loss, d_real, d_gen

    def call(self, inputs, training=None):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                "AdversarialObjective expects [real_samples, "
                f"generated_samples], got {type(inputs).__name__}."
            )
        loss, d_real, d_gen = self.compute_objective(*inputs, training)
        self.add_loss(loss)
        return d_real, d_gen

    def compute_output_spec(self, inputs, training=None):
        spec = self.discriminator.compute_output_spec(inputs[0])
        return spec, spec

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "discriminator": keras.saving.serialize_keras_object(
                    self.discriminator
                ),
                "loss": self.loss,
                "generator_weight": self.generator_weight,
                "passes": self.passes,
                "separate_batches": self.separate_batches,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["discriminator"] = keras.saving.deserialize_keras_object(
            config["discriminator"]
        )
        return cls(**config)
