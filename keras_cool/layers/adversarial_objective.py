"""AdversarialObjective: a GAN's D and G objectives as one loss."""

import keras
from keras import ops

from keras_cool._backend import gradient_after
from keras_cool._layer_tree import layer_paths
from keras_cool.layers._checks import check_weight
from keras_cool.layers.gradient_switch import GradientSwitch
from keras_cool.losses.gan import ALIASES
from keras_cool.losses.gan import OBJECTIVES

__all__ = ["AdversarialObjective"]

# Objectives whose generator-side loss is minus the *whole* discriminator
# loss, so that gradient reversal on both sides (2 passes) is exact when the
# real samples are trainable too (`trainable_real=True`).
FULL_REVERSAL = ("ali_minimax",)


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

    The routing is built from `GradientSwitch` in 3 discriminator passes
    (exact for every loss; `fit` shows `L_D + L_G`) or 2 with gradient
    reversal (exact only where `L_G` is minus the generated-data term of
    `L_D`; `fit` shows `L_D`). `passes=None` picks the fewest exact for
    `loss`; asking for 2 where they are not exact raises:

    | loss | D / G losses | passes |
    |---|---|---|
    | `"minimax"` | `minimax_*` | 2 (or 3) |
    | `"modified"` (`"non_saturating"`) | `modified_*` | 3 |
    | `"wasserstein"` | `wasserstein_*` | 2 (or 3) |
    | `"hinge"` (`"wasserstein_hinge"`) | `wasserstein_hinge_*` | 3 |
    | `"least_squares"` | `least_squares_*` | 3 |
    | `"rsgan"` | `relativistic_standard_*` | 3 |
    | `"rasgan"` | `relativistic_*` (TF-GAN's; `relativistic_average_*`) | 3 |
    | `"ralsgan"` | `relativistic_average_least_squares_*` | 3 |
    | `"ali_minimax"` | D: `-log D(r) - log(1-D(g))`; G: `-L_D` | 2 (or 3) |
    | `"ali_non_saturating"` | G: `-log(1 - D(r)) - log D(g)` | 3 |
    | `"ali_su"` | G: `-log D(r) - log D(g)` | 3 |

    Each family's prefix is also accepted: `"relativistic"` and
    `"relativistic_average"` for `"rasgan"`, `"relativistic_standard"` for
    `"rsgan"`, `"relativistic_average_least_squares"` for `"ralsgan"`.

    The discriminator may take several inputs: pass `real_samples` and
    `generated_samples` as lists with the same structure, e.g.
    `[[x, encoder(x)], [generator(z), z]]` for ALI's `D(x, z)`, with
    `trainable_real=True`. No label smoothing is applied. How the passes
    are built, and what they cost, is described in the docs' "How it works:
    AdversarialObjective" page.

    Args:
        discriminator: a Keras model or layer mapping samples to outputs
            (logits for the sigmoid losses).
        loss: one of the names in the table above. Defaults to
            `"modified"`.
        generator_weight: λ ≥ 0, the generator's gradient factor (its
            learning rate relative to the discriminator's under SGD; Adam
            and RMSprop cancel a constant factor, so there λ matters only
            relative to other losses on G, and at 0). It lives in
            `generator_switch.factor` and can be changed during `fit`.
            Defaults to `1.0`.
        passes: `2`, `3`, or `None` for the fewest exact for `loss`.
            Defaults to `None`.
        separate_batches: `True` runs the discriminator on real and
            generated samples in separate calls, `False` in one call on the
            joined batch; `None` picks separate calls if and only if the
            discriminator contains a `BatchNormalization` layer. Gradients
            are exact either way; only layers that mix samples across the
            batch see a difference. Defaults to `None`.
        trainable_real: `False`: the real samples are data, and only the
            generated side gets λ·∂L_G. `True`: the real samples come out
            of a trained model (ALI's encoder pair), and `L_G` reaches them
            as well, with the same factor λ. Defaults to `False`.
        gradient_penalty: γ ≥ 0, weight of the zero-centred penalty
            `γ/2 · E‖∇_x D(x)‖²` on real samples (R1), added to `L_D`; 0
            turns it off. Defaults to `0.0`.
        penalty_step: h > 0, the finite-difference step of the penalty, in
            the units of the samples. Defaults to `1e-3`.
        seed: seed of the penalty's random directions. Defaults to `None`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `[real_samples, generated_samples]`, same batch size; each
            a tensor, or a list of tensors (one per discriminator input).
        training: passed to the discriminator.

    Returns:
        `(d_real, d_generated)`: the discriminator's outputs.

    Example:

    ```python
    generator = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2)])
    discriminator = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(16), keras.layers.Dense(1)]
    )
    x_real = keras.Input((2,))
    z = keras.Input((8,))
    objective = keras_cool.layers.AdversarialObjective(
        discriminator, loss="modified", generator_weight=1.0
    )
    model = keras.Model([x_real, z], objective([x_real, generator(z)]))
    model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    x = np.random.normal(size=(64, 2))
    noise = np.random.normal(size=(64, 8))
    model.fit([x, noise], epochs=1, batch_size=32, verbose=0)
    ```

    Reference:
        Su Jianlin, "巧断梯度：单个loss实现GAN模型", kexue.fm/archives/6387
        (2019); Ganin and Lempitsky, ICML 2015 (gradient reversal);
        Dumoulin et al., "Adversarially Learned Inference", ICLR 2017;
        Su Jianlin, "用变分推断统一理解生成模型", kexue.fm/archives/5716
        (2018; `ali_su`); Mescheder et al., "Which Training Methods for
        GANs do actually Converge?", ICML 2018 (R1).
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
        trainable_real=False,
        gradient_penalty=0.0,
        penalty_step=1e-3,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        name = ALIASES.get(loss, loss)
        if name not in OBJECTIVES:
            valid = sorted(OBJECTIVES) + sorted(ALIASES)
            raise ValueError(f"Unknown GAN loss {loss!r}: use one of {valid}.")
        objective = OBJECTIVES[name]
        if trainable_real not in (True, False):
            raise ValueError(
                f"trainable_real must be True or False, got {trainable_real!r}."
            )
        two_pass_ok = objective.reversal_exact
        if trainable_real:
            two_pass_ok = name in FULL_REVERSAL
        if passes is None:
            passes = 2 if two_pass_ok else 3
        if passes not in (2, 3):
            raise ValueError(f"passes must be 2, 3 or None, got {passes!r}.")
        if passes == 2 and not two_pass_ok and trainable_real:
            raise ValueError(
                f"loss={loss!r} with trainable_real=True needs passes=3: "
                "gradient reversal on both sides is exact only where the "
                "generator-side loss is minus the whole discriminator loss "
                f"({', '.join(FULL_REVERSAL)})."
            )
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
        self.trainable_real = trainable_real
        owner = "AdversarialObjective"
        gradient_penalty = check_weight(
            "gradient_penalty", gradient_penalty, owner
        )
        penalty_step = check_weight("penalty_step", penalty_step, owner)
        if penalty_step == 0:
            raise ValueError(f"{owner}: `penalty_step` must be > 0, got 0.")
        self.gradient_penalty = gradient_penalty
        self.penalty_step = penalty_step
        self.seed = seed
        # Only with a penalty: a model without one keeps its variables.
        self.seed_generator = (
            keras.random.SeedGenerator(seed) if gradient_penalty else None
        )
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

    def _frozen_weights(self):
        """D's weights as constants: `(trainable, non_trainable)` values."""
        return (
            [
                ops.stop_gradient(v)
                for v in self.discriminator.trainable_variables
            ],
            [
                ops.convert_to_tensor(v)
                for v in self.discriminator.non_trainable_variables
            ],
        )

    def _run(self, inputs, training, frozen=None):
        """D on `inputs`; `frozen`: `_frozen_weights()` to run D on as
        constants (no gradient reaches θ_D)."""
        if frozen is None:
            return self.discriminator(inputs, training=training)
        scores, _ = self.discriminator.stateless_call(
            *frozen, inputs, training=training
        )
        return scores

    def _discriminate(self, real, generated, training, frozen=None):
        """`D(real), D(generated)`: two calls, or one on the joined batch.

        `real` and `generated` are tensors, or lists of tensors for a
        discriminator with several inputs (joined input by input).
        """
        if self._separate():
            return (
                self._run(real, training, frozen),
                self._run(generated, training, frozen),
            )
        joined = keras.tree.map_structure(
            lambda a, b: ops.concatenate([a, b], axis=0), real, generated
        )
        scores = self._run(joined, training, frozen)
        n = ops.shape(keras.tree.flatten(real)[0])[0]
        return scores[:n], scores[n:]

    def penalty(self, real, training=None):
        """The zero-centred gradient penalty on real samples (R1).

        `γ/2 · E‖∇_x D(x)‖²`, estimated by a finite difference along a
        random direction: `γ/2 · mean((D(x + h·u) - D(x))²) / h²` with
        `u ~ N(0, I)` (every input perturbed), since
        `E_u (u·∇D)² = ‖∇D‖²`. Unbiased as `h → 0`, `keras.ops` only; the
        real samples are behind `stop_gradient`, so only θ_D is reached.
        """
        real = keras.tree.map_structure(
            lambda x: ops.stop_gradient(ops.convert_to_tensor(x)), real
        )
        h = self.penalty_step
        moved = keras.tree.map_structure(
            lambda x: (
                x
                + h
                * keras.random.normal(
                    ops.shape(x), dtype=x.dtype, seed=self.seed_generator
                )
            ),
            real,
        )
        d_x, d_moved = self._discriminate(real, moved, training)
        change = ops.square(d_moved - d_x) / (h * h)
        return 0.5 * self.gradient_penalty * ops.mean(change)

    def compute_objective(self, real, generated, training=None):
        """Return `(loss, d_real, d_generated)` without `add_loss`."""
        if isinstance(real, (list, tuple)) or isinstance(
            generated, (list, tuple)
        ):
            keras.tree.assert_same_structure(real, generated)
        real = keras.tree.map_structure(ops.convert_to_tensor, real)
        generated = keras.tree.map_structure(ops.convert_to_tensor, generated)
        switch = self.generator_switch
        stop = ops.stop_gradient
        if self.passes == 2:
            if self.trainable_real:
                real = keras.tree.map_structure(switch, real)
            switched = keras.tree.map_structure(switch, generated)
            d_real, d_gen = self._discriminate(real, switched, training)
            loss = self._d_loss(d_real, d_gen)
            if self.gradient_penalty:
                loss = loss + self.penalty(real, training)
            return loss, d_real, d_gen
        # Constant stops (not a switch whose factor is a variable), so that
        # no backward pass through D is computed for these passes at all.
        if self.trainable_real:
            real_in = keras.tree.map_structure(stop, real)
        else:
            real_in = real
        d_real, d_stop = self._discriminate(
            real_in, keras.tree.map_structure(stop, generated), training
        )
        # The generator's pass sees D's weights as constants: no gradient
        # reaches θ_D from L_G (and D's state, e.g. BatchNorm statistics,
        # is not updated by this pass). D's gradient waits for that read,
        # so the optimizer cannot update D before it (TensorFlow graphs).
        frozen = self._frozen_weights()
        d_real, d_stop = gradient_after(frozen[0], [d_real, d_stop])
        gen_in = keras.tree.map_structure(switch, generated)
        if self.trainable_real:
            d_real_g, d_gen = self._discriminate(
                keras.tree.map_structure(switch, real),
                gen_in,
                training,
                frozen=frozen,
            )
        else:
            d_real_g = stop(d_real)
            d_gen = self._run(gen_in, training, frozen=frozen)
        loss = self._d_loss(d_real, d_stop)
        loss = loss + self._g_loss(d_real_g, d_gen)
        if self.gradient_penalty:
            loss = loss + self.penalty(real, training)
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
                "trainable_real": self.trainable_real,
                "gradient_penalty": self.gradient_penalty,
                "penalty_step": self.penalty_step,
                "seed": self.seed,
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
