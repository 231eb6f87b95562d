"""A plain variational autoencoder built on `VariationalSampling`.

The encoder gives the posterior mean and log-variance of z; the
`keras_cool.layers.VariationalSampling` layer draws z with the
reparameterisation trick and adds the KL term to N(0, I) with `add_loss`
(the Keras 3 way: a loss computed inside a layer, not on symbolic tensors).
The decoder's reconstruction loss is the compiled loss, so `fit` reports
their sum; the script prints both terms on the whole data set at the end
and writes reconstructions and samples from the prior as PNGs.

    python examples/vae.py                 # scikit-learn digits, offline
    python examples/vae.py --dataset mnist # needs a network
"""

import argparse
import os

import keras
import numpy as np
from _common import add_dataset_argument
from _common import load_images

import keras_cool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_dataset_argument(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument(
        "--quick", action="store_true", help="tiny run (a few seconds)"
    )
    parser.add_argument("--output-dir", default="outputs/vae")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.hidden = 2, 32
    return args


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


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    x, _ = load_images(args.dataset, quick=args.quick)
    print(f"data: {args.dataset}, {len(x)} images of {x.shape[1:]}")
    vae, decoder, reconstruction = build_vae(x.shape[1:], args)
    history = vae.fit(
        x, x, batch_size=args.batch_size, epochs=args.epochs, verbose=0
    )
    losses = history.history["loss"]
    print(f"training loss: epoch 1 {losses[0]:.3f}, last {losses[-1]:.3f}")

    # The two terms on the whole data set (z = the posterior mean).
    total = vae.evaluate(x, x, batch_size=len(x), verbose=0)
    x_hat = vae.predict(x, batch_size=512, verbose=0)
    recon = float(reconstruction(x, x_hat))  # mean over images
    kl = total - recon
    print(f"reconstruction (BCE summed over pixels): {recon:.3f}")
    print(f"beta * KL(q(z|x) || N(0, I)), beta={args.beta}: {kl:.3f}")

    rng = np.random.default_rng(args.seed)
    shown = x[rng.choice(len(x), 32, replace=False)]
    pairs = np.stack([shown, vae.predict(shown, verbose=0)], axis=1)
    pairs = pairs.reshape((-1,) + x.shape[1:])
    z = rng.normal(size=(64, args.latent_dim)).astype("float32")
    samples = decoder.predict(z, verbose=0)
    for name, images, rows in (
        ("reconstructions", pairs, 8),
        ("samples", samples, 8),
    ):
        path = os.path.join(args.output_dir, f"{name}.png")
        keras_cool.utils.save_png(
            keras_cool.utils.tile_images(images, rows=rows), path
        )
        print("wrote", path)

    path = os.path.join(args.output_dir, "vae.keras")
    vae.save(path)
    loaded = keras.saving.load_model(path)  # safe mode
    same = np.allclose(loaded.predict(shown, verbose=0), pairs[1::2], atol=1e-5)
    print(f"saved and reloaded {path} in safe mode: same outputs {same}")
    print(
        f"RESULT reconstruction={recon:.4f} kl={kl:.4f} "
        f"loss={total:.4f} reload_ok={int(same)}"
    )


if __name__ == "__main__":
    main()
