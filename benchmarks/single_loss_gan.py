"""Single-loss GAN step vs alternating D/G steps, time per iteration.

Three ways to train the same DCGAN-sized networks on scikit-learn's 8x8
digits with the non-saturating loss, one D and one G update per iteration:

- `single`: one model, one `compile`, one loss from
  `keras_cool.layers.AdversarialObjective`, `fit`.
- `train_step`: the keras.io pattern, a `keras.Model` whose custom
  `train_step` does a D step (real and fake concatenated in one D call)
  then a G step, inside one compiled step, run by `fit`. Written per
  backend (GradientTape / jax.grad / torch autograd): benchmarks are not
  library code.
- `two_train_on_batch`: a D model and a combined G model, each compiled,
  two `train_on_batch` calls per iteration (the Keras 2 recipe).

Repeats are interleaved. The whole measurement runs `--runs` times (3 by
default), each run with new models, compiled again. Each run also times the
pieces of an iteration on their own (G forward, D forward, a D step on
real and fake, a G step through a frozen D: compiled `predict_on_batch` /
`train_on_batch` calls) and computes from them the bound the single loss
can reach over alternating steps in that run:
`(G + D_step + G_step) / (D_step + G_step - D)`: alternating steps run G
forward once more, and one D forward (the fake half of the G step) less
is needed when both updates come from one backward pass.

It prints, per run, the median- and min-based ratios train_step / single
and the bound, then the median and spread (min-max) of each over the
runs, and marks a ratio "stable" when its spread is within 10 % of its
median. The last line is `single_loss_gan: ratio=R (...)` with R the
median over runs of the per-run median ratio. Results and what limits the
ratio: README, "Performance".

    python benchmarks/single_loss_gan.py [--quick] [--width 64]
        [--upsampling resize|transposed] [--jit-compile auto|true|false]
        [--runs 3]
"""

import argparse
import os
import time

import keras
import numpy as np
from _timing import interleaved
from _timing import medians
from _timing import minimums
from _timing import print_times
from _timing import ratio_line
from keras import ops
from sklearn.datasets import load_digits

from keras_cool.layers import AdversarialObjective
from keras_cool.losses import modified_discriminator_loss
from keras_cool.losses import modified_generator_loss

LATENT = 32


def generator_model(width, upsampling="resize"):
    """z -> 4x4 -> 8x8 image; `upsampling` "resize" (UpSampling2D + Conv2D)
    or "transposed" (Conv2DTranspose, DCGAN's original)."""
    z = keras.Input((LATENT,))
    h = keras.layers.Dense(4 * 4 * width)(z)
    h = keras.layers.LeakyReLU(0.2)(keras.layers.Reshape((4, 4, width))(h))
    if upsampling == "transposed":
        h = keras.layers.Conv2DTranspose(width // 2, 4, 2, padding="same")(h)
    else:
        h = keras.layers.UpSampling2D()(h)
        h = keras.layers.Conv2D(width // 2, 3, padding="same")(h)
    h = keras.layers.LeakyReLU(0.2)(h)
    out = keras.layers.Conv2D(1, 3, padding="same", activation="tanh")(h)
    return keras.Model(z, out, name="generator")


def discriminator_model(width):
    x = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(width // 2, 3, 2, padding="same")(x)
    h = keras.layers.LeakyReLU(0.2)(h)
    h = keras.layers.Conv2D(width, 3, 2, padding="same")(h)
    h = keras.layers.LeakyReLU(0.2)(keras.layers.Flatten()(h))
    return keras.Model(x, keras.layers.Dense(1)(h), name="discriminator")


def adam():
    return keras.optimizers.Adam(2e-4, beta_1=0.5)


def wait_for(model):
    """Block until every queued step of `model` has run.

    JAX dispatches steps asynchronously and `fit` can return before they
    finish (nothing in a run without logged metrics reads a result), so
    without this the unfinished work of one runner is timed as part of the
    next one's.
    """
    for variable in model.trainable_variables:
        ops.convert_to_numpy(variable)


# --- 1. single loss --------------------------------------------------------


def single_loss_runner(args):
    generator, discriminator = (
        generator_model(args.width, args.upsampling),
        discriminator_model(args.width),
    )
    real, noise = keras.Input((8, 8, 1)), keras.Input((LATENT,))
    objective = AdversarialObjective(discriminator, loss="modified")
    model = keras.Model([real, noise], objective([real, generator(noise)]))
    model.compile(optimizer=adam(), jit_compile=args.jit_compile)

    def run(x, z, batch):
        z = z[:, :LATENT]  # one noise sample per step is all it needs
        model.fit([x, z], batch_size=batch, epochs=1, verbose=0, shuffle=False)
        wait_for(model)

    return run


# --- 2. alternating steps in one custom train_step (keras.io) -------------


class AlternatingGAN(keras.Model):
    """keras.io's GAN: D step on [fake, real], then G step, per batch."""

    def __init__(self, generator, discriminator, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator

    def call(self, inputs):
        return self.generator(inputs[1][:, :LATENT])

    def losses_d(self, x, z):
        # Fresh noise for each step, as keras.io does (and so that a
        # compiler cannot share the G forward pass between the two steps).
        fake = ops.stop_gradient(self.generator(z[:, :LATENT], training=True))
        scores = self.discriminator(
            ops.concatenate([x, fake], 0), training=True
        )
        n = ops.shape(x)[0]
        return modified_discriminator_loss(scores[:n], scores[n:], 0.0)

    def losses_g(self, z):
        scores = self.discriminator(
            self.generator(z[:, LATENT:], training=True)
        )
        return modified_generator_loss(scores)

    def train_step(self, *args):
        backend = keras.backend.backend()
        return getattr(self, f"_train_step_{backend}")(*args)

    def _split(self, data):
        (x, z), _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return x, z

    def _train_step_tensorflow(self, data):
        import tensorflow as tf

        x, z = self._split(data)
        with tf.GradientTape() as tape:
            d_loss = self.losses_d(x, z)
        d_vars = self.discriminator.trainable_variables
        grads = tape.gradient(d_loss, d_vars)
        self.d_optimizer.apply(grads, d_vars)
        with tf.GradientTape() as tape:
            g_loss = self.losses_g(z)
        g_vars = self.generator.trainable_variables
        grads = tape.gradient(g_loss, g_vars)
        self.g_optimizer.apply(grads, g_vars)
        return {"d_loss": d_loss, "g_loss": g_loss}

    def _train_step_torch(self, data):
        import torch

        x, z = self._split(data)
        for part, optimizer, loss_fn in (
            (self.discriminator, self.d_optimizer, lambda: self.losses_d(x, z)),
            (self.generator, self.g_optimizer, lambda: self.losses_g(z)),
        ):
            self.zero_grad()
            loss = loss_fn()
            loss.backward()
            variables = part.trainable_variables
            with torch.no_grad():
                optimizer.apply([v.value.grad for v in variables], variables)
        return {}

    def _train_step_jax(self, state, data):
        # One optimizer (self.optimizer) built on all weights; each step
        # gives it gradients for one network only (None for the other), so
        # each weight gets one Adam update per iteration.
        import jax

        trainable, non_trainable, optimizer_vars, metrics_vars = state
        x, z = self._split(data)
        variables = self.trainable_variables
        d_ids = {id(v) for v in self.discriminator.trainable_variables}
        is_d = [id(v) in d_ids for v in variables]

        def loss_of(part, fn):
            def loss(values):
                merged = [
                    values[i] if part[i] else trainable[i]
                    for i in range(len(variables))
                ]
                mapping = list(zip(variables, merged)) + list(
                    zip(self.non_trainable_variables, non_trainable)
                )
                with keras.StatelessScope(state_mapping=mapping):
                    return fn()

            return loss

        is_g = [not d for d in is_d]
        for part, fn in ((is_d, lambda: self.losses_d(x, z)), (is_g, None)):
            fn = fn or (lambda: self.losses_g(z))
            grads = jax.grad(loss_of(part, fn))(list(trainable))
            grads = [g if p else None for g, p in zip(grads, part)]
            trainable, optimizer_vars = self.optimizer.stateless_apply(
                optimizer_vars, grads, trainable
            )
        state = (trainable, non_trainable, optimizer_vars, metrics_vars)
        return {}, state


def train_step_runner(args):
    gan = AlternatingGAN(
        generator_model(args.width, args.upsampling),
        discriminator_model(args.width),
    )
    gan.d_optimizer, gan.g_optimizer = adam(), adam()
    gan.compile(optimizer=adam(), jit_compile=args.jit_compile)
    gan.optimizer.build(gan.trainable_variables)
    gan.d_optimizer.build(gan.discriminator.trainable_variables)
    gan.g_optimizer.build(gan.generator.trainable_variables)

    def run(x, z, batch):
        gan.fit([x, z], batch_size=batch, epochs=1, verbose=0, shuffle=False)
        wait_for(gan)

    return run


# --- 3. two train_on_batch calls per iteration (Keras 2 recipe) -----------


def two_step_models(args):
    """G, D, and the compiled D-step and G-step models of the Keras 2
    recipe: `[real, noise] -> [D(real), D(G(noise))]` and
    `noise -> D(G(noise))`, both with binary cross-entropy."""
    generator, discriminator = (
        generator_model(args.width, args.upsampling),
        discriminator_model(args.width),
    )
    real, noise = keras.Input((8, 8, 1)), keras.Input((LATENT,))
    bce = keras.losses.BinaryCrossentropy(from_logits=True)
    d_model = keras.Model(
        [real, noise], [discriminator(real), discriminator(generator(noise))]
    )
    d_model.compile(
        optimizer=adam(), loss=[bce, bce], jit_compile=args.jit_compile
    )
    g_noise = keras.Input((LATENT,))
    g_model = keras.Model(g_noise, discriminator(generator(g_noise)))
    g_model.compile(optimizer=adam(), loss=bce, jit_compile=args.jit_compile)
    return generator, discriminator, d_model, g_model


def two_train_on_batch_runner(args):
    generator, discriminator, d_model, g_model = two_step_models(args)

    def run(x, z, batch):
        ones = np.ones((batch, 1), "float32")
        zeros = np.zeros((batch, 1), "float32")
        for start in range(0, len(x), batch):
            xb, zb = x[start : start + batch], z[start : start + batch]
            # Keras 3 reads `trainable` when a step runs (not at compile,
            # as Keras 2 did), so the flags are set before each call.
            discriminator.trainable, generator.trainable = True, False
            d_model.train_on_batch([xb, zb[:, :LATENT]], [ones, zeros])
            discriminator.trainable, generator.trainable = False, True
            g_model.train_on_batch(zb[:, LATENT:], ones)
        wait_for(g_model)
        wait_for(d_model)

    return run


# --- the pieces of an iteration, for the bound ---------------------------


def pieces_runner(args):
    """Times G forward, D forward, a D step and a G step, each on its own;
    returns {piece: seconds per call} (median of `calls` calls)."""
    generator, discriminator, d_step, g_step = two_step_models(args)
    for model in (generator, discriminator):
        model.compile(jit_compile=args.jit_compile)

    def run(x, z, batch, calls):
        ones = np.ones((batch, 1), "float32")
        zeros = np.zeros((batch, 1), "float32")
        xb, zb = x[:batch], z[:batch, :LATENT]

        def train_d():
            discriminator.trainable, generator.trainable = True, False
            d_step.train_on_batch([xb, zb], [ones, zeros])

        def train_g():
            discriminator.trainable, generator.trainable = False, True
            g_step.train_on_batch(zb, ones)

        pieces = {
            "G": lambda: ops.convert_to_numpy(generator.predict_on_batch(zb)),
            "D": lambda: ops.convert_to_numpy(
                discriminator.predict_on_batch(xb)
            ),
            "D_step": lambda: (train_d(), wait_for(d_step)),
            "G_step": lambda: (train_g(), wait_for(g_step)),
        }
        for fn in pieces.values():  # compile
            fn()
        times = {name: [] for name in pieces}
        for _ in range(calls):
            for name, fn in pieces.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
        return {name: float(np.median(t)) for name, t in times.items()}

    return run


def bound_of(pieces):
    """The most the single loss can gain over alternating steps."""
    g, d = pieces["G"], pieces["D"]
    alternating = g + pieces["D_step"] + pieces["G_step"]
    return alternating / (pieces["D_step"] + pieces["G_step"] - d)


RUNNERS = {
    "single": single_loss_runner,
    "train_step": train_step_runner,
    "two_train_on_batch": two_train_on_batch_runner,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run")
    parser.add_argument(
        "--width",
        type=int,
        default=64,
        help="channels of G's 4x4 layer and D's last conv (DCGAN: 128+)",
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--upsampling",
        choices=["resize", "transposed"],
        default="resize",
        help="the generator's 4x4 -> 8x8 layer: UpSampling2D + Conv2D "
        "(default) or Conv2DTranspose",
    )
    parser.add_argument(
        "--jit-compile",
        type=lambda v: {"auto": "auto", "true": True, "false": False}[v],
        default="auto",
        help="compile(jit_compile=...) for every method: auto (Keras's "
        "default: XLA on JAX, not on a CPU-only TensorFlow, eager torch), "
        "true or false",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.batch_size, args.repeats, args.width = 2, 8, 1, 8
        args.runs = 1
    keras.utils.set_random_seed(args.seed)
    images = (load_digits().images / 16.0).astype("float32")[..., None]
    rng = np.random.default_rng(args.seed)
    n = args.steps * args.batch_size
    x = images[rng.integers(len(images), size=n)] * 2 - 1
    # Two noise draws per iteration (D step, G step); `single` uses one.
    z = rng.normal(size=(n, 2 * LATENT)).astype("float32")
    print(
        f"backend={keras.backend.backend()} batch={args.batch_size} "
        f"steps={args.steps} width={args.width} "
        f"upsampling={args.upsampling} jit_compile={args.jit_compile} "
        f"repeats={args.repeats} (interleaved) runs={args.runs} "
        f"load={os.getloadavg()[0]:.2f}"
    )
    pooled = {name: [] for name in RUNNERS}
    per_run = {"median ratio": [], "min ratio": [], "bound": []}
    for r in range(args.runs):
        runs = {name: make(args) for name, make in RUNNERS.items()}
        for run in runs.values():  # warm-up: build, trace and compile
            run(
                x[: 2 * args.batch_size],
                z[: 2 * args.batch_size],
                args.batch_size,
            )
        times = interleaved(
            {
                name: (lambda run=run: run(x, z, args.batch_size))
                for name, run in runs.items()
            },
            args.repeats,
            rotate=True,
            per=args.steps,
        )
        pieces = pieces_runner(args)(x, z, args.batch_size, max(args.steps, 6))
        median, best = medians(times), minimums(times)
        per_run["median ratio"].append(median["train_step"] / median["single"])
        per_run["min ratio"].append(best["train_step"] / best["single"])
        per_run["bound"].append(bound_of(pieces))
        print(f"run {r + 1} (load={os.getloadavg()[0]:.2f}):")
        print_times(times, scale=1e3, unit="ms/iter")
        print(
            "  pieces: "
            + ", ".join(f"{k} {1e3 * v:.3f} ms" for k, v in pieces.items())
            + "; "
            + ", ".join(f"{k} {v[-1]:.3f}" for k, v in per_run.items())
        )
        for name, samples in times.items():
            pooled[name].extend(samples)
    for label, values in per_run.items():
        middle = float(np.median(values))
        spread = max(values) - min(values)
        stable = "stable" if spread <= 0.1 * middle else "NOT stable"
        print(
            f"{label} over {args.runs} runs: median {middle:.3f}, spread "
            f"{min(values):.3f}-{max(values):.3f} ({stable})"
        )
    median = medians(pooled)
    print(
        ratio_line(
            "single_loss_gan",
            pooled,
            "train_step",
            "single",
            ratio=float(np.median(per_run["median ratio"])),
            extra=[
                "two_train_on_batch="
                f"{median['two_train_on_batch']:.4g} s per iteration",
                f"bound={float(np.median(per_run['bound'])):.3f}",
                f"runs={args.runs}",
            ],
        )
    )


if __name__ == "__main__":
    main()
