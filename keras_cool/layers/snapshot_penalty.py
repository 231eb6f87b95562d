"""SnapshotPenalty: pull a network's outputs toward an older copy's."""

import keras
from keras import ops

__all__ = ["SnapshotPenalty"]


@keras.saving.register_keras_serializable(package="keras_cool")
class SnapshotPenalty(keras.layers.Layer):
    """Runs a network and adds `λ·mean((f(x) - f°(x))²)`, f° a snapshot.

    Called on the network's inputs (a GAN generator's noise `z`), it
    returns `f(z)` and, in training, adds with `add_loss`

        `weight · mean over all entries of (f(z) - stop(f°(z)))²`,

    where `f°` is the same network run with a snapshot of its trainable
    weights (`stateless_call`). This is the variational regularizer of Su
    Jianlin's "unified variational view" post: the generator loss a GAN
    should minimise is `-E log D(G(z)) + KL(q(x) ‖ q°(x))`, with `q°` the
    distribution of the generator before the update, and the KL is
    estimated by `λ·E_z‖G(z) - G°(z)‖²` on the same `z`. The mean runs over
    every entry, as Su's code (`mean_squared_error`, λ = 5) does, so a
    `d`-dimensional output gives `λ/d · E‖·‖²`.

    The snapshot is refreshed every `refresh_every` training calls: at the
    end of each k-th call (after the penalty is computed, before the
    optimizer applies that step's update) it is set to the current
    weights. With `k = 1`, `G°` is the generator of the previous step; with
    `k > 1`, `G` is pulled toward its state at the start of each window of
    `k` steps (a proximal term, closest to Su's several G steps on one
    `old_fake`). With `G°` equal to the current weights the gradient would
    be exactly zero, which is why the snapshot is older by design: the
    penalty's gradient is zero on the first step only.

    The refresh is an assignment of the layer's own non-trainable variables
    inside `call` (like BatchNormalization's moving statistics), so it is
    traced into the compiled train step and carried through JAX's
    stateless step; no callback is needed. Outside training (`predict`,
    `evaluate`, `training=False`) the layer is just `f`.

    Cost: memory for one copy of the network's trainable weights plus an
    int32 step counter; time for one more forward pass of the network per
    training step (no backward pass: the snapshot's output is a constant)
    and one `where`-select + assignment per weight.

    Args:
        network: the Keras model or layer to regularize (its trainable
            weights are snapshotted).
        weight: λ ≥ 0, the penalty factor. Defaults to `1.0`.
        refresh_every: int k ≥ 1, training calls between refreshes.
            Defaults to `1`.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: the network's inputs.
        training: passed to the network; the penalty and the refresh
            happen only when it is true.

    Returns:
        `network(inputs)`.

    Example:

    ```python
    generator = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    discriminator = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(1)]
    )
    real = keras.Input((2,))
    noise = keras.Input((4,))
    penalty = keras_cool.layers.SnapshotPenalty(generator, weight=5.0)
    generated = penalty(noise)  # generator(noise), plus the penalty
    outputs = keras_cool.layers.AdversarialObjective(discriminator)(
        [real, generated]
    )
    gan = keras.Model([real, noise], outputs)
    gan.compile("adam")
    x = np.random.normal(size=(32, 2))
    z = np.random.normal(size=(32, 4))
    gan.fit([x, z], epochs=1, verbose=0)
    ```

    Reference:
        Su Jianlin, "用变分推断统一理解生成模型", kexue.fm/archives/5716
        (2018), arXiv:1807.05936.
    """

    def __init__(self, network, weight=1.0, refresh_every=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ValueError(f"weight must be a float >= 0, got {weight!r}.")
        if not weight >= 0 or weight == float("inf"):
            raise ValueError(f"weight must be a float >= 0, got {weight!r}.")
        if (
            isinstance(refresh_every, bool)
            or not isinstance(refresh_every, int)
            or refresh_every < 1
        ):
            raise ValueError(
                f"refresh_every must be an int >= 1, got {refresh_every!r}."
            )
        self.network = network
        self.weight = float(weight)
        self.refresh_every = refresh_every

    def build(self, input_shape):
        if not self.network.built:
            self.network.build(input_shape)
        self.snapshot = [
            self.add_weight(
                shape=v.shape,
                dtype=v.dtype,
                initializer="zeros",
                trainable=False,
                name=f"snapshot_{i}",
            )
            for i, v in enumerate(self.network.trainable_variables)
        ]
        self.step = self.add_weight(
            shape=(),
            dtype="int32",
            initializer="zeros",
            trainable=False,
            name="step",
        )
        self.refresh()
        self.built = True

    def refresh(self):
        """Copy the network's current weights into the snapshot now."""
        for s, v in zip(self.snapshot, self.network.trainable_variables):
            # A copy, not the same buffer (JAX would donate it twice).
            s.assign(ops.copy(ops.convert_to_tensor(v)))

    def penalty(self, outputs, inputs, training=None):
        """`weight · mean((outputs - stop(f°(inputs)))²)`, no side effects."""
        old, _ = self.network.stateless_call(
            [ops.convert_to_tensor(s) for s in self.snapshot],
            [
                ops.convert_to_tensor(v)
                for v in self.network.non_trainable_variables
            ],
            inputs,
            training=training,
        )
        old = ops.stop_gradient(old)
        return self.weight * ops.mean(ops.square(outputs - old))

    def call(self, inputs, training=None):
        outputs = self.network(inputs, training=training)
        if not training:
            return outputs
        self.add_loss(self.penalty(outputs, inputs, training))
        step = ops.convert_to_tensor(self.step) + 1
        due = ops.equal(ops.mod(step, self.refresh_every), 0)
        for s, v in zip(self.snapshot, self.network.trainable_variables):
            current = ops.stop_gradient(ops.convert_to_tensor(v))
            s.assign(ops.where(due, current, ops.convert_to_tensor(s)))
        self.step.assign(step)
        return outputs

    def compute_output_spec(self, inputs, training=None):
        return self.network.compute_output_spec(inputs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "network": keras.saving.serialize_keras_object(self.network),
                "weight": self.weight,
                "refresh_every": self.refresh_every,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(
            config["network"]
        )
        return cls(**config)
