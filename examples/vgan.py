"""
Title: A GAN with and without Su Jianlin's variational regularizer
Description: `keras_cool.layers.SnapshotPenalty` adds the missing KL term
    of Su's variational view to the generator, inside one `fit`; the same
    GAN is trained with and without it, over seeds.
What you will see: a per-seed Markdown table of modes captured, % of
    high-quality samples and reverse KL, plain and regularized (also after
    rejection sampling), their medians, and a scatter plot per run.

Su's "unified variational view" of generative models finds that the usual
generator loss misses a term: the generator should minimise
`-E log D(G(z)) + KL(q(x) ‖ q°(x))`, with `q°` the distribution of the
generator before the update, and the KL is estimated by
`λ·E_z‖G(z) - G°(z)‖²`. `keras_cool.layers.SnapshotPenalty` adds that term
inside one `fit`: `G°` is a snapshot of the generator's weights, refreshed
every `--refresh-every` steps (1: the previous step).

This script trains the same single-loss GAN
(`keras_cool.layers.AdversarialObjective`) twice per seed, with λ = 0 and
with λ = `--penalty`, on the ring of 8 or the grid of 25 Gaussians, and
prints a per-seed table of modes, % high-quality samples and reverse KL,
with the medians.

Two presets (`--preset`):

- `unstable` (default): Su's second experiment in spirit (no
  normalisation, a high learning rate): Adam(5e-3, β1 = 0.5), constant
  learning rate, non-saturating loss, z in R^16. Here the plain GAN
  collapses. (Several G steps per D step have no counterpart in one
  simultaneous update, and a larger `generator_weight` does not speed G
  up under Adam, which cancels constant gradient factors.)
- `sharp`: the defaults of `gan_single_loss.py` (RSGAN loss, z in R², 8,000
  steps, cosine decay to 10 %), plain and with the regularizer.

Each generator is also scored after rejection sampling by a density-ratio
classifier (DRS, as in `gan_single_loss.py`; `--no-rejection` skips it):
the `drs_` columns. The raw columns are what G itself does.

    python examples/vgan.py --data ring
    python examples/vgan.py --data grid --preset sharp --seeds 5
    python examples/vgan.py --quick        # a smoke run
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
from _mixtures import add_rejection_arguments
from _mixtures import format_table
from _mixtures import mixture_centres
from _mixtures import mixture_scale
from _mixtures import mlp
from _mixtures import mode_metrics
from _mixtures import rejection_metrics
from _mixtures import sample_mixture
from _mixtures import save_scatter

import keras_cool

PRESETS = {
    "unstable": dict(
        loss="modified",
        learning_rate=5e-3,
        final_lr=1.0,
        gradient_penalty=0.0,
        steps=3000,
        latent_dim=16,
    ),
    "sharp": dict(
        loss="rsgan",
        learning_rate=1e-3,
        final_lr=0.1,
        gradient_penalty=0.0,
        steps=8000,
        latent_dim=2,
    ),
}


# ## Settings
#
# A preset fills the options left at None; `--help` lists every option
# with its default. `--quick` is the smoke run the tests use (one seed, 10
# steps), written to `outputs/vgan/quick/`.


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
        "--preset",
        choices=sorted(PRESETS),
        default="unstable",
        help="unstable: Su's setting, where the plain GAN collapses; "
        "sharp: gan_single_loss.py's defaults",
    )
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument(
        "--seeds", type=int, default=5, help="how many seeds, from --seed"
    )
    parser.add_argument(
        "--penalty", type=float, default=5.0, help="λ of SnapshotPenalty"
    )
    parser.add_argument(
        "--refresh-every", type=int, default=5, help="k: steps per snapshot"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="training steps (None: the preset's)",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="Adam's initial step size (None: the preset's)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=256, help="points per step"
    )
    parser.add_argument(
        "--latent-dim",
        type=int,
        default=None,
        help="dimensions of z (None: the preset's)",
    )
    parser.add_argument(
        "--width", type=int, default=128, help="units per layer of G and D"
    )
    add_rejection_arguments(parser)
    parser.add_argument(
        "--output-dir",
        default="outputs/vgan",
        help="where the scatter plots go",
    )
    add_quick_argument(parser)
    args = parser.parse_args(argv)
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.quick:
        args.steps, args.seeds, args.width, args.batch_size = 10, 1, 16, 64
    return quick_output_dir(args)


# ## Data
#
# Points from the mixture, scaled so the largest centre coordinate is 1; the
# generator's samples are mapped back before they are scored.


def training_data(args, seed):
    rng = np.random.default_rng(seed)
    n = args.steps * args.batch_size
    real = sample_mixture(args.data, n, rng) / mixture_scale(args.data)
    noise = rng.normal(size=(n, args.latent_dim)).astype("float32")
    return real, noise


# ## Model
#
# One model, one loss: `AdversarialObjective` routes `L_D` to D and `L_G` to
# G; with λ > 0, the generator is wrapped in `SnapshotPenalty`, which returns
# `G(z)` and adds `λ·mean((G(z) - G°(z))²)`.


def build(args, penalty):
    generator = mlp(
        keras.Input((args.latent_dim,)), args.width, 3, 2, "generator"
    )
    discriminator = mlp(keras.Input((2,)), args.width, 3, 1, "discriminator")
    real = keras.Input((2,), name="real")
    noise = keras.Input((args.latent_dim,), name="noise")
    if penalty > 0:
        generated = keras_cool.layers.SnapshotPenalty(
            generator, penalty, args.refresh_every, name="snapshot_penalty"
        )(noise)
    else:
        generated = generator(noise)
    objective = keras_cool.layers.AdversarialObjective(
        discriminator,
        loss=args.loss,
        gradient_penalty=args.gradient_penalty,
        seed=args.seed,
    )
    model = keras.Model([real, noise], objective([real, generated]))
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate, args.steps, alpha=args.final_lr
    )
    optimizer = keras.optimizers.Adam(schedule, beta_1=0.5)
    fused = 1 if keras.backend.backend() == "torch" else 10
    model.compile(optimizer=optimizer, steps_per_execution=fused)
    return model, generator


# ## Training
#
# One `fit` per run; the same data and initial weights for λ = 0 and λ > 0
# (the seed fixes both).


def train(args, seed, penalty):
    keras.utils.set_random_seed(seed)
    model, generator = build(args, penalty)
    real, noise = training_data(args, seed)
    start = time.time()
    model.fit(
        [real, noise],
        batch_size=args.batch_size,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    return generator, real, time.time() - start


# ## Evaluation
#
# 2,500 samples per run, scored with VEEGAN's rule (nearest centre, within
# 3 σ), as in `gan_single_loss.py`.


def evaluate(args, generator, real, seed):
    rng = np.random.default_rng(10_000 + seed)
    scale = mixture_scale(args.data)
    z = rng.normal(size=(2500, args.latent_dim)).astype("float32")
    samples = generator.predict(z, batch_size=2500, verbose=0) * scale
    modes, hq, reverse_kl = mode_metrics(samples, args.data)
    scores = {"modes": modes, "hq": 100 * hq, "rkl": reverse_kl}
    if args.rejection:
        scores.update(
            rejection_metrics(generator, real, scale, args.data, rng, args)
        )
    return samples, scores


# ## Putting it together
#
# For each seed, the plain GAN (λ = 0) and the regularized one, each
# scored and plotted; then the table and the medians.


def main(argv=None):
    args = parse_args(argv)
    total = len(mixture_centres(args.data))
    print(
        f"{args.data}: preset={args.preset} loss={args.loss} "
        f"lr={args.learning_rate} steps={args.steps} λ={args.penalty} "
        f"k={args.refresh_every} backend={keras.backend.backend()}"
    )
    os.makedirs(args.output_dir, exist_ok=True)
    rows = []
    for seed in range(args.seed, args.seed + args.seeds):
        row = {"seed": seed}
        for tag, penalty in (("plain", 0.0), ("vgan", args.penalty)):
            generator, real, seconds = train(args, seed, penalty)
            samples, scores = evaluate(args, generator, real, seed)
            for key, value in scores.items():
                row[f"{tag}_{key}"] = value
            row[f"{tag}_s"] = seconds
            name = f"{args.data}_{args.preset}_{tag}_seed{seed}.png"
            save_scatter(
                samples,
                args.data,
                os.path.join(args.output_dir, name),
                np.random.default_rng(seed),
                f"{'plain GAN' if tag == 'plain' else 'VGAN'}, "
                f"{args.preset} preset, seed {seed}",
            )
        rows.append(row)
        print(
            f"seed {seed}: plain {row['plain_modes']}/{total} modes "
            f"{row['plain_hq']:.1f} % HQ, vgan {row['vgan_modes']}/{total} "
            f"modes {row['vgan_hq']:.1f} % HQ",
            flush=True,
        )
        if args.rejection:
            print(
                f"  after rejection sampling: plain {row['plain_drs_modes']}"
                f"/{total} modes {row['plain_drs_hq']:.1f} % HQ, vgan "
                f"{row['vgan_drs_modes']}/{total} modes "
                f"{row['vgan_drs_hq']:.1f} % HQ",
                flush=True,
            )

    # Outputs: the per-seed table and the medians (Markdown), the scatter
    # plots, and one `RESULT` line with the medians.
    keys = [f"{t}_{k}" for t in ("plain", "vgan") for k in ("modes", "hq")]
    keys += ["plain_rkl", "vgan_rkl", "plain_s", "vgan_s"]
    if args.rejection:
        keys += [
            f"{t}_drs_{k}" for t in ("plain", "vgan") for k in ("modes", "hq")
        ]
    median = {"seed": "median"}
    median.update({k: float(np.median([r[k] for r in rows])) for k in keys})
    print(format_table(rows + [median], ["seed"] + keys))
    print(f"wrote scatter plots to {args.output_dir}")
    print_result(
        args,
        " ".join(f"{k}={median[k]:.3f}" for k in keys)
        + f" total_modes={total} data={args.data} preset={args.preset}",
    )


if __name__ == "__main__":
    main()
