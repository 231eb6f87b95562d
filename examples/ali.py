"""
Title: ALI / BiGAN on 2-D mixtures: three objectives, one loss, one `fit`
Description: `keras_cool.layers.AdversarialObjective(trainable_real=True)`
    trains a generator, an encoder and a pair discriminator in one loss;
    three encoder+generator objectives are compared over seeds.
What you will see: per objective and seed, the modes captured and % of
    high-quality samples of G(z), the reconstruction rate of G(E(x)), the
    medians next to published ALI rows, and scatter plots of samples and
    reconstructions.

Adversarially learned inference trains a generator `G: z -> x` and an
encoder `E: x -> z` against a discriminator that scores pairs: `D(x, z)`
should tell real pairs `(x, E(x))` from generated pairs `(G(z), z)`. Both
pairs carry gradient: the real pair trains E, the generated pair trains G.
`keras_cool.layers.AdversarialObjective(..., trainable_real=True)` routes
this exactly in one loss: D gets `∂L_D`, E and G get `λ·∂L_G`.

Three encoder+generator objectives (D's loss is always
`-log D(x, E(x)) - log(1 - D(G(z), z))`):

- `ali_minimax`: ALI's minimax form, `L_G = -L_D`.
- `ali_non_saturating`: the swapped form, `-log(1 - D(real pair)) -
  log D(generated pair)`.
- `ali_su`: Su Jianlin's derived loss, `-log D(real pair) -
  log D(generated pair)`: both pairs push D up.

Printed per objective, over seeds: modes and % high-quality samples of
`G(z)` (VEEGAN's rule), reverse KL, and reconstruction: the share of real
points `x` whose `G(E(x))` falls in `x`'s own mode (nearest centre), next
to the published ALI rows (VEEGAN's and PacGAN's tables; their protocols
differ from ours and from each other). `G(z)` is also scored after
rejection sampling by a density-ratio classifier (the `drs_` columns, as in
`gan_single_loss.py`; `--no-rejection` skips it).

    python examples/ali.py --data ring
    python examples/ali.py --data grid --objectives ali_su --seeds 5
    python examples/ali.py --quick         # a smoke run
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
from _mixtures import nearest_mode
from _mixtures import rejection_metrics
from _mixtures import sample_mixture
from _mixtures import save_scatter

import keras_cool

OBJECTIVES = ("ali_su", "ali_non_saturating", "ali_minimax")
# Published ALI rows: modes / % HQ (VEEGAN Table 1; PacGAN Table 1).
PUBLISHED = {
    "ring": "VEEGAN: 2.8/8 modes, 0.13 % HQ; PacGAN: 6.6/8, 97.6 % HQ",
    "grid": "VEEGAN: 15.8/25 modes, 1.6 % HQ; PacGAN: 24.1/25, 95.7 % HQ",
}


# ## Settings
#
# `--help` lists every option with its default. `--quick` is the smoke run
# the tests use (one seed, 10 steps), written to `outputs/ali/quick/`.


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
        "--objectives",
        nargs="+",
        choices=OBJECTIVES,
        default=list(OBJECTIVES),
        help="the encoder+generator objectives to train",
    )
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument(
        "--seeds", type=int, default=5, help="how many seeds, from --seed"
    )
    parser.add_argument(
        "--steps", type=int, default=8000, help="training steps per run"
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
        "--final-lr",
        type=float,
        default=0.1,
        help="cosine decay ends at this fraction of the learning rate",
    )
    parser.add_argument(
        "--gradient-penalty",
        type=float,
        default=0.0,
        help="γ of the zero-centred penalty on real pairs; 0: off",
    )
    parser.add_argument(
        "--latent-dim", type=int, default=2, help="dimensions of z"
    )
    parser.add_argument(
        "--width", type=int, default=128, help="units per layer of G, E, D"
    )
    add_rejection_arguments(parser)
    parser.add_argument(
        "--output-dir", default="outputs/ali", help="where the plots go"
    )
    add_quick_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds, args.width, args.batch_size = 10, 1, 16, 64
    return quick_output_dir(args)


# ## Data
#
# Points from the mixture scaled so the largest centre coordinate is 1, and
# the generator's noise `z ~ N(0, I)`.


def training_data(args, seed):
    rng = np.random.default_rng(seed)
    n = args.steps * args.batch_size
    real = sample_mixture(args.data, n, rng) / mixture_scale(args.data)
    noise = rng.normal(size=(n, args.latent_dim)).astype("float32")
    return real, noise


# ## Model
#
# Three MLPs: G (z -> x), E (x -> z) and D((x, z) -> logit). The objective
# layer gets the two pairs as lists; with `trainable_real=True` the real
# pair's `E(x)` is trained through the frozen discriminator, as `G(z)` is.


def build(args, objective_name, seed):
    latent = args.latent_dim
    generator = mlp(keras.Input((latent,)), args.width, 3, 2, "generator")
    encoder = mlp(keras.Input((2,)), args.width, 3, latent, "encoder")
    discriminator = mlp(
        [keras.Input((2,)), keras.Input((latent,))],
        args.width,
        3,
        1,
        "discriminator",
    )
    x = keras.Input((2,), name="real")
    z = keras.Input((latent,), name="noise")
    objective = keras_cool.layers.AdversarialObjective(
        discriminator,
        loss=objective_name,
        trainable_real=True,
        gradient_penalty=args.gradient_penalty,
        seed=seed,
    )
    model = keras.Model([x, z], objective([[x, encoder(x)], [generator(z), z]]))
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate, args.steps, alpha=args.final_lr
    )
    fused = 1 if keras.backend.backend() == "torch" else 10
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, beta_1=0.5),
        steps_per_execution=fused,
    )
    return model, generator, encoder


# ## Training
#
# One `fit` per objective and seed.


def train(args, objective_name, seed):
    keras.utils.set_random_seed(seed)
    model, generator, encoder = build(args, objective_name, seed)
    real, noise = training_data(args, seed)
    start = time.time()
    model.fit(
        [real, noise],
        batch_size=args.batch_size,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    return generator, encoder, real, time.time() - start


# ## Evaluation
#
# Generation: 2,500 samples `G(z)`, scored with VEEGAN's rule.
# Reconstruction: 2,500 real points `x` with known modes; a point counts when
# `G(E(x))` is nearest to `x`'s own centre (`recon`), and also within 3 σ of
# it (`recon_hq`).


def evaluate(args, generator, encoder, real, seed):
    rng = np.random.default_rng(10_000 + seed)
    scale = mixture_scale(args.data)
    z = rng.normal(size=(2500, args.latent_dim)).astype("float32")
    samples = generator.predict(z, batch_size=2500, verbose=0) * scale
    modes, hq, reverse_kl = mode_metrics(samples, args.data)
    x, x_modes = sample_mixture(args.data, 2500, rng, return_modes=True)
    codes = encoder.predict(x / scale, batch_size=2500, verbose=0)
    rebuilt = generator.predict(codes, batch_size=2500, verbose=0) * scale
    nearest, close = nearest_mode(rebuilt, args.data)
    same = nearest == x_modes
    scores = {
        "modes": modes,
        "hq": 100 * hq,
        "rkl": reverse_kl,
        "recon": 100 * same.mean(),
        "recon_hq": 100 * (same & close).mean(),
    }
    if args.rejection:
        scores.update(
            rejection_metrics(generator, real, scale, args.data, rng, args)
        )
    return samples, rebuilt, scores


# ## Putting it together
#
# Every objective over every seed, each run scored and plotted; then the
# tables.


def main(argv=None):
    args = parse_args(argv)
    total = len(mixture_centres(args.data))
    print(
        f"{args.data}: ALI, steps={args.steps} lr={args.learning_rate} "
        f"z={args.latent_dim} backend={keras.backend.backend()}"
    )
    os.makedirs(args.output_dir, exist_ok=True)
    keys = ["modes", "hq", "rkl", "recon", "recon_hq", "train_s"]
    if args.rejection:
        keys += ["drs_modes", "drs_hq", "drs_rkl"]
    rows, summary = [], []
    for name in args.objectives:
        runs = []
        for seed in range(args.seed, args.seed + args.seeds):
            generator, encoder, real, seconds = train(args, name, seed)
            samples, rebuilt, scores = evaluate(
                args, generator, encoder, real, seed
            )
            scores.update(objective=name, seed=seed, train_s=seconds)
            runs.append(scores)
            print(
                f"{name} seed {seed}: {scores['modes']}/{total} modes, "
                f"{scores['hq']:.1f} % HQ, reconstruction "
                f"{scores['recon']:.1f} %",
                flush=True,
            )
            stem = os.path.join(args.output_dir, f"{args.data}_{name}_{seed}")
            rng = np.random.default_rng(seed)
            title = f"{name}, seed {seed}"
            save_scatter(
                samples, args.data, stem + "_samples.png", rng, title, "G(z)"
            )
            save_scatter(
                rebuilt,
                args.data,
                stem + "_reconstructions.png",
                rng,
                title,
                "G(E(x))",
            )
        rows += runs
        median = {k: float(np.median([r[k] for r in runs])) for k in keys}
        median.update(objective=name, seed="median")
        summary.append(median)

    # Outputs: per-seed rows, the medians per objective, the published ALI
    # rows, and one `RESULT` line with the medians of each objective.
    print(format_table(rows, ["objective", "seed"] + keys))
    print(format_table(summary, ["objective", "seed"] + keys))
    print(f"published ALI ({args.data}): {PUBLISHED[args.data]}")
    result = []
    for median in summary:
        short = median["objective"].replace("ali_", "")
        result += [
            f"{short}_{k}={median[k]:.3f}"
            for k in ("modes", "hq", "recon", "drs_modes", "drs_hq")
            if k in median
        ]
    print_result(
        args,
        " ".join(result)
        + f" total_modes={total} data={args.data} seeds={args.seeds}",
    )


if __name__ == "__main__":
    main()
