"""
Title: An adversarial autoencoder (AAE) in one `fit`, with a VAE as baseline
Description: `keras_cool.layers.AdversarialObjective` on the latent space
    pushes an encoder's codes toward N(0, I) while a decoder reconstructs
    the digits: one `compile`, one `fit` for all three networks.
What you will see: a table of reconstruction error and of how well the
    codes match N(0, I) (MMD² and a KS statistic), for the AAE and the VAE
    of `vae.py`, and grids of digits decoded from prior samples.

An AAE swaps the roles of x and z in a GAN: a discriminator on the latent
space tells prior samples `z ~ N(0, I)` from codes `E(x)`, and the encoder
plays the generator, so the codes are pushed toward the prior; a decoder
reconstructs x from `E(x)`. In Su Jianlin's variational view the joint
loss is `min_{G,E} E_x[-log D(E(x)) + λ‖x - G(E(x))‖²]`.
`keras_cool.layers.AdversarialObjective` makes the adversarial part one
loss (D gets `∂L_D`, E gets `λ_adv·∂L_G`), and the reconstruction loss is
the compiled loss of the decoder's output, so one `compile` + `fit` trains
all three networks.

Data: scikit-learn's 8x8 digits (offline; `--dataset fashion_mnist` or
`mnist5k` for 28x28 images, see `examples/_data.py`). Printed for the AAE
and for the plain VAE of `examples/vae.py` (trained in the same run): the
reconstruction MSE per pixel (the VAE with `z` = its posterior mean), and
how well the codes match N(0, I): an RBF-kernel MMD² between codes and
prior samples, and the mean over dimensions of the Kolmogorov-Smirnov
statistic between each code dimension and N(0, 1). Writes grids of decoded
prior samples.

    python examples/aae.py
    python examples/aae.py --epochs 200 --seed 1
    python examples/aae.py --dataset fashion_mnist  # 70,000 28x28 images
    python examples/aae.py --quick         # a smoke run
"""

import argparse
import os

import keras
import numpy as np
from _cli import HelpFormatter
from _cli import add_quick_argument
from _cli import print_result
from _cli import quick_output_dir
from _data import add_dataset_argument
from _data import load_images
from _plots import image_grid
from vae import EPOCHS
from vae import BinaryCrossentropySum
from vae import build_vae

import keras_cool

# ## Settings
#
# `--help` lists every option with its default. `--quick` is the smoke run
# the tests use, written to `outputs/aae/quick/`.


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter
    )
    add_dataset_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="passes over the images (default per dataset: "
        + ", ".join(f"{k} {v}" for k, v in EPOCHS.items())
        + ")",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="images per step"
    )
    parser.add_argument(
        "--latent-dim", type=int, default=8, help="dimensions of z"
    )
    parser.add_argument(
        "--hidden", type=int, default=256, help="units per hidden layer"
    )
    parser.add_argument(
        "--adversarial-weight",
        type=float,
        default=1.0,
        help="λ_adv: the encoder's adversarial gradient factor",
    )
    parser.add_argument(
        "--output-dir", default="outputs/aae", help="where the PNGs go"
    )
    add_quick_argument(parser)
    args = parser.parse_args(argv)
    args.beta = 1.0
    if args.epochs is None:
        args.epochs = EPOCHS.get(args.dataset, 10)
    if args.quick:
        args.epochs, args.hidden = 2, 32
    return quick_output_dir(args)


# ## Data
#
# Images in [0, 1] (1,797 digits by default); the prior samples the latent
# discriminator sees as "real" are drawn once per epoch's worth of images
# (fresh each epoch through a generator would work too). All epochs are
# laid end to end for one `fit`; above 200,000 images in all (Fashion-MNIST:
# 70,000 per epoch) the batches are gathered one at a time by a
# `PyDataset`, in the same order, instead of copying the images.


def prior_samples(n, latent_dim, rng, epochs):
    return rng.normal(size=(epochs * n, latent_dim)).astype("float32")


class OrderedBatches(keras.utils.PyDataset):
    """Batches `([x[order], prior], [x[order], zeros])`, in order."""

    def __init__(self, x, order, prior, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.order, self.prior = x, order, prior
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        images = self.x[self.order[rows]]
        prior = self.prior[rows]
        zeros = np.zeros((len(images), 1), "float32")
        return (images, prior), (images, zeros)


# ## Model
#
# Encoder `E: x -> z` (deterministic), decoder `G: z -> x` (sigmoid pixels),
# latent discriminator `D: z -> logit`. The model's outputs are the
# reconstruction (compiled with a sum-over-pixels cross-entropy, as in
# `vae.py`) and the objective layer's scores (no compiled loss; the layer
# adds its own).


def build_aae(shape, args):
    pixels = int(np.prod(shape))
    images = keras.Input(shape, name="images")
    h = keras.layers.Flatten()(images)
    h = keras.layers.Dense(args.hidden, activation="relu")(h)
    encoder = keras.Model(
        images, keras.layers.Dense(args.latent_dim)(h), name="encoder"
    )
    codes = keras.Input((args.latent_dim,))
    g = keras.layers.Dense(args.hidden, activation="relu")(codes)
    g = keras.layers.Dense(pixels, activation="sigmoid")(g)
    decoder = keras.Model(codes, keras.layers.Reshape(shape)(g), name="decoder")
    z = keras.Input((args.latent_dim,))
    d = keras.layers.Dense(args.hidden)(z)
    d = keras.layers.LeakyReLU(0.2)(d)
    d = keras.layers.Dense(args.hidden)(d)
    d = keras.layers.LeakyReLU(0.2)(d)
    latent_d = keras.Model(z, keras.layers.Dense(1)(d), name="latent_d")

    prior = keras.Input((args.latent_dim,), name="prior")
    code = encoder(images)
    objective = keras_cool.layers.AdversarialObjective(
        latent_d,
        loss="modified",
        generator_weight=args.adversarial_weight,
        name="latent_objective",
    )
    d_prior, _ = objective([prior, code])
    reconstruction = keras.layers.Identity(name="reconstruction")(decoder(code))
    aae = keras.Model([images, prior], [reconstruction, d_prior], name="aae")
    aae.compile(
        optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        loss=[BinaryCrossentropySum(), None],
    )
    return aae, encoder, decoder


# ## Training
#
# One `fit` for the AAE (data + prior samples), one for the VAE baseline.


def train_aae(x, args, rng):
    aae, encoder, decoder = build_aae(x.shape[1:], args)
    n = len(x)
    order = np.concatenate(
        [rng.permutation(n) + k * n for k in range(args.epochs)]
    )
    prior = prior_samples(n, args.latent_dim, rng, args.epochs)
    if len(order) > 200000:
        batches = OrderedBatches(x, order % n, prior, args.batch_size)
        aae.fit(batches, epochs=1, verbose=0)
        return encoder, decoder
    images = np.concatenate([x] * args.epochs)
    aae.fit(
        [images[order], prior],
        [images[order], np.zeros((len(order), 1), "float32")],
        batch_size=args.batch_size,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    return encoder, decoder


def train_vae(x, args):
    vae, decoder, _ = build_vae(x.shape[1:], args)
    vae.fit(x, x, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    encoder = keras.Model(vae.input, vae.get_layer("z_mean").output)
    return encoder, decoder


# ## Evaluation
#
# Reconstruction MSE per pixel on all images; MMD² (RBF kernel, bandwidth
# √d, unbiased) between the codes (all 1,797 digits; 5,000 drawn at random
# on larger sets, the kernel matrices being quadratic) and as many prior
# samples, with the same statistic for two prior samples as the floor;
# mean per-dimension KS statistic against N(0, 1) over all codes.

MMD_POINTS = 5000


def mmd2(a, b):
    def kernel(u, v):
        d2 = (u**2).sum(1)[:, None] - 2 * u @ v.T + (v**2).sum(1)[None]
        return np.exp(-d2 / (2 * u.shape[1]))

    kaa, kbb, kab = kernel(a, a), kernel(b, b), kernel(a, b)
    n, m = len(a), len(b)
    return float(
        (kaa.sum() - np.trace(kaa)) / (n * (n - 1))
        + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
        - 2 * kab.mean()
    )


def ks_mean(codes):
    from scipy.stats import kstest

    return float(np.mean([kstest(c, "norm").statistic for c in codes.T]))


def evaluate(x, encoder, decoder, rng):
    codes = encoder.predict(x, batch_size=512, verbose=0).astype("float64")
    rebuilt = decoder.predict(codes, batch_size=512, verbose=0)
    scored = codes
    if len(codes) > MMD_POINTS:
        scored = codes[rng.choice(len(codes), MMD_POINTS, replace=False)]
    prior = rng.normal(size=scored.shape)
    return {
        "mse": float(np.mean((rebuilt - x) ** 2)),
        "mmd2": mmd2(scored, prior),
        "ks": ks_mean(codes),
    }


# ## Putting it together
#
# The AAE, then the VAE from the same seed, both scored on all images.


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    x, _ = load_images(args.dataset, quick=args.quick, data_dir=args.data_dir)
    print(f"data: {args.dataset}, {len(x)} images of {x.shape[1:]}")
    results = {}
    decoders = {}
    encoder, decoders["aae"] = train_aae(x, args, rng)
    results["aae"] = evaluate(x, encoder, decoders["aae"], rng)
    keras.utils.set_random_seed(args.seed)
    encoder, decoders["vae"] = train_vae(x, args)
    results["vae"] = evaluate(x, encoder, decoders["vae"], rng)
    points = min(len(x), MMD_POINTS)
    floor = mmd2(
        rng.normal(size=(points, args.latent_dim)),
        rng.normal(size=(points, args.latent_dim)),
    )

    # Outputs: the two rows, the MMD² floor, grids of decoded prior
    # samples, and one `RESULT` line.
    print("| model | recon MSE | MMD² to N(0, I) | mean KS |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['mse']:.4f} | {r['mmd2']:.4f} | {r['ks']:.3f} |")
    print(f"MMD² between two prior samples of this size: {floor:.4f}")
    z = rng.normal(size=(64, args.latent_dim)).astype("float32")
    for name, decoder in decoders.items():
        path = image_grid(
            decoder.predict(z, verbose=0),
            os.path.join(args.output_dir, f"{name}_prior_samples.png"),
            f"{name.upper()}: the decoder on 64 draws z ~ N(0, I)",
            rows=8,
            xlabel="each tile: decoder(z), the same z for both models",
        )
        print("wrote", path)
    print_result(
        args,
        " ".join(
            f"{name}_{k}={v:.4f}"
            for name, r in results.items()
            for k, v in r.items()
        )
        + f" mmd2_floor={floor:.4f}",
    )


if __name__ == "__main__":
    main()
