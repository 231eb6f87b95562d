"""
Title: A GAN trained with one loss, one `compile` and one `fit`
Description: `keras_cool.layers.AdversarialObjective` joins the
    discriminator and generator objectives into one loss, so each optimizer
    step updates D with dL_D/dθ_D and G with λ·dL_G/dθ_G at once.
What you will see: the modes captured and the % of high-quality samples
    out of 2,500 (3-σ rule, as in VEEGAN and PacGAN), their reverse KL to
    the uniform mode histogram, and a scatter plot of real (red) and
    generated (blue) points, also after rejection sampling.

Data: the 2-D ring of 8 or grid of 25 Gaussians (PacGAN layout).
Defaults: RSGAN loss (Su Jianlin's RSGAN post; `--loss` picks any name
`AdversarialObjective` accepts), G and D are 3x128 LeakyReLU MLPs, z in R^2
(sharper modes than R^16), Adam(1e-3, beta_1=0.5) with cosine decay to 10 %,
batch 256, 8,000 steps, coordinates scaled to [-1, 1]. Options, all off by
default: `--ema` (EMA of the weights, G evaluated on it), `--gradient-penalty`
(zero-centred R1 on real samples), `--spectral-norm` (on D), `--span`
(training coordinates scaled to [-span, span]), `--final-lr` (end of the
cosine decay), `--pack` (PacGAN: D scores packs of samples), `--fourier`
(D sees random Fourier features of its input). After training, the samples
are also scored after rejection sampling by a density-ratio classifier
(DRS, `--no-rejection` to skip; the raw G numbers are printed first).

    python examples/gan_single_loss.py --data ring
    python examples/gan_single_loss.py --data grid --loss ralsgan --seed 2
"""

import argparse
import os
import time

import keras
import numpy as np
from _cli import HelpFormatter
from _cli import add_quick_argument
from _cli import print_result
from _cli import quick_output_dir
from _mixtures import PLOT_LIMIT
from _mixtures import add_rejection_arguments
from _mixtures import mixture_centres
from _mixtures import mlp
from _mixtures import mode_metrics
from _mixtures import rejection_metrics
from _mixtures import sample_mixture
from _plots import scatter

import keras_cool

# ## Settings
#
# `--loss` accepts every name `AdversarialObjective` knows.
# `--generator-weight` is λ, the factor on the generator's gradient: the
# ratio of the two learning rates under SGD (Adam and RMSprop cancel a
# constant factor, so there it changes little). `--help` lists every
# option with its default; `--quick` is the smoke run the tests use,
# written to `outputs/gan_single_loss/quick/`.


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--data",
        choices=["ring", "grid"],
        default="ring",
        help="the ring of 8 or the grid of 25 Gaussians",
    )
    parser.add_argument(
        "--loss",
        choices=keras_cool.layers.AdversarialObjective.LOSSES,
        default="rsgan",
        help="the GAN objective (a name AdversarialObjective accepts)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (None: 8000; 10 with --quick)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=256, help="points per step"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=1e-3,
        help="Adam's initial step size (cosine decay to --final-lr of it)",
    )
    parser.add_argument(
        "--generator-weight",
        type=float,
        default=1.0,
        help="λ, the factor on G's gradient",
    )
    parser.add_argument(
        "--latent-dim", type=int, default=2, help="dimensions of z"
    )
    parser.add_argument(
        "--final-lr",
        type=float,
        default=0.1,
        help="cosine decay ends at this fraction of the learning rate",
    )
    parser.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="EMA decay of the weights (G is evaluated on the EMA); 0: off",
    )
    parser.add_argument(
        "--span",
        type=float,
        default=1.0,
        help="train on coordinates scaled to [-span, span]",
    )
    parser.add_argument(
        "--gradient-penalty",
        type=float,
        default=0.0,
        help="γ of the zero-centred (R1) penalty on real samples; 0: off",
    )
    parser.add_argument(
        "--spectral-norm",
        action="store_true",
        help="wrap D's Dense layers in keras.layers.SpectralNormalization",
    )
    parser.add_argument(
        "--pack",
        type=int,
        default=1,
        help="PacGAN: D scores packs of this many samples; 1: off",
    )
    parser.add_argument(
        "--fourier",
        type=float,
        default=0.0,
        help="D sees Fourier features of its input, of this scale; 0: off",
    )
    add_rejection_arguments(parser)
    parser.add_argument(
        "--width", type=int, default=128, help="units per layer of G and D"
    )
    parser.add_argument(
        "--output-dir",
        default="outputs/gan_single_loss",
        help="where the scatter plots go",
    )
    add_quick_argument(parser)
    return quick_output_dir(parser.parse_args(argv))


# ## The data: 2-D Gaussian mixtures
#
# `ring`: 8 modes on the unit circle, standard deviation 0.01. `grid`: 25
# modes at {-4, -2, 0, 2, 4}², standard deviation 0.05. Each sample picks its
# mode uniformly (`examples/_mixtures.py`, shared with `vgan.py` and
# `ali.py`).


# ## The model
#
# Generator and discriminator are small LeakyReLU MLPs (`mlp` in
# `_mixtures.py`, shared with `vgan.py` and `ali.py`). The one
# `keras.Model` maps `[real, noise]` to the discriminator's outputs;
# `AdversarialObjective` adds the joined loss with `add_loss`, so `compile`
# needs no `loss=`.


def build(args):
    generator = mlp(
        keras.Input((args.latent_dim,)), args.width, 3, 2, "generator"
    )
    discriminator = mlp(
        keras.Input((2,)),
        args.width,
        3,
        1,
        "discriminator",
        args.spectral_norm,
        args.pack,
        args.fourier,
    )
    real = keras.Input((2,), name="real")
    noise = keras.Input((args.latent_dim,), name="noise")
    objective = keras_cool.layers.AdversarialObjective(
        discriminator,
        loss=args.loss,
        generator_weight=args.generator_weight,
        gradient_penalty=args.gradient_penalty,
        seed=args.seed,
    )
    model = keras.Model([real, noise], objective([real, generator(noise)]))
    # Cosine decay to 10 %: the late, small steps sharpen the modes.
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate, args.steps, alpha=args.final_lr
    )
    optimizer = keras.optimizers.Adam(schedule, beta_1=0.5)
    # Several steps per compiled call cut Python overhead (not on torch).
    fused = 1 if keras.backend.backend() == "torch" else 10
    model.compile(optimizer=optimizer, steps_per_execution=fused)
    return model, generator, objective


# ## Training
#
# One epoch over `steps * batch` real points and as many noise vectors:
# every batch is one simultaneous D and G step.


def train(model, objective, real, noise, steps, batch, args):
    print(
        f"{args.data}: loss={args.loss} passes={objective.passes} "
        f"steps={steps} batch={batch} backend={keras.backend.backend()}"
    )
    callbacks = []
    if args.ema:
        callbacks.append(
            keras_cool.callbacks.ExponentialMovingAverage(
                args.ema, final_weights="ema"
            )
        )
    start = time.time()
    model.fit(
        [real, noise],
        batch_size=batch,
        epochs=1,
        shuffle=False,
        verbose=2,
        callbacks=callbacks,
    )
    return time.time() - start


# ## Evaluation: modes and sample quality
#
# The VEEGAN/PacGAN metrics. Each sample goes to its nearest centre; it is
# high quality (HQ) within 3 standard deviations of it. A mode is captured
# when at least one HQ sample is nearest to it. The reverse KL is between
# the histogram of HQ samples over modes and the uniform distribution (0
# when balanced). `mode_metrics` (from `_mixtures.py`) computes all three.


# ## Looking at the outputs
#
# A scatter plot of 2,500 generated points (blue) over as many real ones
# (red): a captured mode shows as a blue blob on a red one. With rejection
# sampling (below) a second plot, `..._drs.png`, shows the kept samples.


def plot(samples, rng, args, suffix="", what="G(z)"):
    limit = PLOT_LIMIT[args.data]
    total = len(mixture_centres(args.data))
    modes, hq, _ = mode_metrics(samples, args.data)
    path = os.path.join(args.output_dir, f"{args.data}_{args.loss}{suffix}.png")
    return scatter(
        samples,
        sample_mixture(args.data, 2500, rng),
        path,
        f"{args.loss} on the {args.data}, {what}: {modes}/{total} modes, "
        f"{100 * hq:.1f} % high quality",
        limit,
        label=what,
    )


# ## Sharper samples: rejection sampling
#
# A 2-D generator from a connected latent space cannot jump between modes:
# some samples always land on the bridges between them. Rejection sampling
# (DRS, Azadi et al., 2019) drops them afterwards: a classifier learns real
# points against G's, its logit estimates log p_data(x) / p_G(x), and each
# sample of G is kept with a probability proportional to that ratio. A
# plain MLP is too smooth for modes of standard deviation 0.05 on a grid of
# spacing 2; random Fourier features of its input (`--rejection-fourier`)
# let it see them. The raw G numbers above are what G itself does.


# ## Putting it together


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    steps = args.steps = args.steps or (10 if args.quick else 8000)
    batch = 64 if args.quick else args.batch_size
    if args.quick:
        args.width = 16
    model, generator, objective = build(args)
    n = steps * batch
    # Train on standardised coordinates (the grid spans ±4), map back after.
    scale = float(np.abs(mixture_centres(args.data)).max()) / args.span
    real = sample_mixture(args.data, n, rng) / scale
    noise = rng.normal(size=(n, args.latent_dim)).astype("float32")
    seconds = train(model, objective, real, noise, steps, batch, args)

    z = rng.normal(size=(2500, args.latent_dim)).astype("float32")
    samples = generator.predict(z, batch_size=2500, verbose=0) * scale
    modes, hq, reverse_kl = mode_metrics(samples, args.data)
    total = len(mixture_centres(args.data))
    path = plot(samples, rng, args)
    print(f"modes {modes}/{total}, high quality {100 * hq:.1f} %, ")
    print(f"reverse KL {reverse_kl:.3f}, {seconds:.1f} s, wrote {path}")
    extra = ""
    if args.rejection:
        drs, kept = rejection_metrics(
            generator, real, scale, args.data, rng, args, return_samples=True
        )
        path = plot(kept, rng, args, "_drs", "G(z) after rejection")
        print(
            f"after rejection sampling: modes {drs['drs_modes']}/{total}, "
            f"high quality {drs['drs_hq']:.1f} %, reverse KL "
            f"{drs['drs_rkl']:.3f}, {drs['drs_kept']:.1f} % of G's samples "
            f"kept, {drs['drs_s']:.1f} s, wrote {path}"
        )
        extra = (
            f" drs_modes={drs['drs_modes']} drs_hq={drs['drs_hq']:.1f} "
            f"drs_reverse_kl={drs['drs_rkl']:.3f} "
            f"drs_kept={drs['drs_kept']:.1f} drs_s={drs['drs_s']:.1f}"
        )
    print_result(
        args,
        f"modes={modes} total_modes={total} hq={100 * hq:.1f} "
        f"reverse_kl={reverse_kl:.3f} data={args.data} loss={args.loss} "
        f"seed={args.seed} train_s={seconds:.1f}{extra}",
    )


if __name__ == "__main__":
    main()
