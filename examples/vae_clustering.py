"""One-step clustering with a VAE and a Gaussian-mixture prior.

Su Jianlin's "VAE (4): a one-step clustering scheme" (kexue.fm/archives/
5887) on top of `keras_cool.layers.VariationalSampling` and
`keras_cool.layers.GaussianMixturePrior`: an encoder gives p(z|x), a
classifier p(y|z) on the sampled code, a decoder q(x|z), and the prior
q(z|y) = N(mu_y, I) with one learned mean per cluster. Training needs no
labels; the labels are only used to score the clusters afterwards, next to
k-means and Ward (agglomerative) clustering of the same pixels.

Training runs in three stages:
1. warm-up: the encoder mean and the decoder as a plain autoencoder;
2. initialisation: k-means on the warm-up codes sets the prior means
   (`prior.means.assign`) and the classifier is fitted to those k-means
   clusters, so the mixture starts where the codes already group;
3. the clustering VAE itself: reconstruction + the prior's losses
   (per-sample KL to the class Gaussians, KL(p(y|z) || uniform), and a
   batch-level balance term that keeps clusters about equally big), plus
   one addition to Su's recipe: each image is paired with one of its
   nearest neighbours in pixel space, and `NeighbourAgreement` adds
   -log sum_y p(y|x) p(y|neighbour), so near-identical images share a
   cluster (as in SCAN, Van Gansbeke et al., ECCV 2020).

Clusters are read off as argmax p(y|z) at z = the posterior mean. It
writes per-cluster grids of real images (one row per cluster) and of
generations (z ~ N(mu_y, I) decoded) into --output-dir.

    python examples/vae_clustering.py                 # digits, offline
    python examples/vae_clustering.py --dataset mnist # needs a network
"""

import argparse
import os
import time

import keras
import numpy as np
from _common import add_dataset_argument
from _common import classical_clusterings
from _common import cluster_scores
from _common import load_images

import keras_cool

NUM_CLASSES = 10


@keras.saving.register_keras_serializable(package="keras_cool_examples")
class NeighbourAgreement(keras.layers.Layer):
    """Adds weight * mean(-log sum_y p(y|x) p(y|x')); returns p(y|x).

    Args:
        weight: float, the weight of the agreement loss.
    """

    def __init__(self, weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = weight

    def call(self, prob, neighbour_prob):
        agreement = keras.ops.sum(prob * neighbour_prob, axis=-1)
        loss = -keras.ops.log(keras.ops.clip(agreement, 1e-7, 1.0))
        self.add_loss(self.weight * keras.ops.mean(loss))
        return prob

    def get_config(self):
        config = super().get_config()
        config.update(weight=self.weight)
        return config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_dataset_argument(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--warmup-epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument(
        "--recon-weight",
        type=float,
        default=5.0,
        help="lambda, the inverse variance of the decoder's Gaussian "
        "(Su's `lamb`): the loss is lambda/2 * sum of squared errors.",
    )
    parser.add_argument("--marginal-weight", type=float, default=5.0)
    parser.add_argument(
        "--neighbour-weight",
        type=float,
        default=2.0,
        help="weight of the nearest-neighbour agreement loss (0: off)",
    )
    parser.add_argument("--neighbours", type=int, default=5)

    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument(
        "--quick", action="store_true", help="tiny run (a few seconds)"
    )
    parser.add_argument("--output-dir", default="outputs/vae_clustering")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.warmup_epochs, args.hidden = 2, 2, 32
    return args


def build_models(shape, args):
    """Encoder, classifier, decoder and the clustering VAE around them."""
    pixels = int(np.prod(shape))
    hidden = args.hidden
    images = keras.Input(shape, name="images")
    h = keras.layers.Flatten()(images)
    h = keras.layers.Dense(hidden, activation="relu")(h)
    h = keras.layers.Dense(hidden // 2, activation="relu")(h)
    z_mean = keras.layers.Dense(args.latent_dim, name="z_mean")(h)
    z_log_var = keras.layers.Dense(args.latent_dim, name="z_log_var")(h)
    encoder = keras.Model(images, [z_mean, z_log_var], name="encoder")

    codes = keras.Input((args.latent_dim,), name="z")
    c = keras.layers.Dense(hidden // 2, activation="relu")(codes)
    c = keras.layers.Dense(NUM_CLASSES, activation="softmax")(c)
    classifier = keras.Model(codes, c, name="classifier")

    g = keras.layers.Dense(hidden // 2, activation="relu")(codes)
    g = keras.layers.Dense(hidden, activation="relu")(g)
    g = keras.layers.Dense(pixels, activation="sigmoid")(g)
    g = keras.layers.Reshape(shape)(g)
    decoder = keras.Model(codes, g, name="decoder")

    mean, log_var = encoder(images)
    # beta=0: the mixture prior below replaces the N(0, I) KL term.
    z = keras_cool.layers.VariationalSampling(beta=0.0, seed=args.seed)(
        [mean, log_var]
    )
    prior = keras_cool.layers.GaussianMixturePrior(
        NUM_CLASSES, marginal_weight=args.marginal_weight, name="prior"
    )
    y = prior([mean, log_var, classifier(z)])
    neighbours = keras.Input(shape, name="neighbours")
    neighbour_mean, _ = encoder(neighbours)
    y = NeighbourAgreement(args.neighbour_weight, name="agreement")(
        y, classifier(neighbour_mean)
    )
    vae = keras.Model(
        [images, neighbours], [decoder(z), y], name="clustering_vae"
    )
    vae.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=["mse", None],
        # mse averages over pixels; lambda/2 * sum = lambda/2 * pixels * mse.
        loss_weights=[0.5 * args.recon_weight * pixels, None],
    )
    return encoder, classifier, decoder, prior, vae


def initialise_from_kmeans(encoder, classifier, prior, x, args):
    """Warm-up codes -> k-means -> prior means and classifier targets."""
    from sklearn.cluster import KMeans

    codes, _ = encoder.predict(x, batch_size=512, verbose=0)
    kmeans = KMeans(NUM_CLASSES, n_init=10, random_state=args.seed)
    clusters = kmeans.fit_predict(codes)
    prior.means.assign(kmeans.cluster_centers_.astype("float32"))
    classifier.compile(
        keras.optimizers.Adam(args.learning_rate),
        "sparse_categorical_crossentropy",
    )
    classifier.fit(
        codes,
        clusters,
        batch_size=args.batch_size,
        epochs=min(20, args.warmup_epochs),
        verbose=0,
    )
    return clusters


def nearest_neighbours(x, args):
    """Indices (n, k) of each image's k nearest neighbours (pixels)."""
    from sklearn.neighbors import NearestNeighbors

    flat = x.reshape(len(x), -1)
    k = min(args.neighbours, len(x) - 1)
    search = NearestNeighbors(n_neighbors=k + 1).fit(flat)
    return search.kneighbors(flat, return_distance=False)[:, 1:]


def neighbour_pairs(x, nearest, args):
    """Each image with one of its nearest neighbours, drawn at random."""
    rng = np.random.default_rng(args.seed)
    pick = rng.integers(0, nearest.shape[1], len(x))
    return x[nearest[np.arange(len(x)), pick]]


def predict_clusters(encoder, classifier, x):
    codes, _ = encoder.predict(x, batch_size=512, verbose=0)
    return classifier.predict(codes, batch_size=512, verbose=0).argmax(-1)


def save_grids(x, clusters, decoder, prior, args, per_row=10):
    """Real images per cluster, and decoded samples z ~ N(mu_y, I)."""
    rng = np.random.default_rng(args.seed)
    shape = x.shape[1:]
    real = np.zeros((NUM_CLASSES * per_row,) + shape, "float32")
    for k in range(NUM_CLASSES):
        members = np.flatnonzero(clusters == k)
        if len(members):
            chosen = rng.choice(members, min(per_row, len(members)), False)
            real[k * per_row : k * per_row + len(chosen)] = x[chosen]
    means = np.asarray(prior.means.numpy())
    noise = rng.normal(size=(NUM_CLASSES, per_row, means.shape[1]))
    z = (means[:, None, :] + noise).reshape(-1, means.shape[1])
    generated = decoder.predict(z.astype("float32"), verbose=0)
    paths = []
    for name, images in (("clusters", real), ("generated", generated)):
        path = os.path.join(args.output_dir, f"{name}.png")
        grid = keras_cool.utils.tile_images(images, rows=NUM_CLASSES)
        keras_cool.utils.save_png(grid, path)
        paths.append(path)
    return paths


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    start = time.time()
    x, labels = load_images(args.dataset, quick=args.quick)
    print(f"data: {args.dataset}, {len(x)} images of {x.shape[1:]}")

    baselines = classical_clusterings(x, NUM_CLASSES, seed=args.seed)
    baseline_scores = {
        name: cluster_scores(labels, found) for name, found in baselines.items()
    }

    encoder, classifier, decoder, prior, vae = build_models(x.shape[1:], args)
    images = keras.Input(x.shape[1:])
    mean, _ = encoder(images)
    autoencoder = keras.Model(images, decoder(mean))
    autoencoder.compile(keras.optimizers.Adam(args.learning_rate), "mse")
    autoencoder.fit(
        x, x, batch_size=args.batch_size, epochs=args.warmup_epochs, verbose=0
    )
    initial = initialise_from_kmeans(encoder, classifier, prior, x, args)
    initial_acc = cluster_scores(labels, initial)["acc"]
    print(f"warm-up: k-means on the codes, acc={initial_acc:.4f}")

    history = vae.fit(
        [x, neighbour_pairs(x, nearest_neighbours(x, args), args)],
        x,
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=True,
        verbose=0,
    )
    print(f"final training loss {history.history['loss'][-1]:.4f}")

    clusters = predict_clusters(encoder, classifier, x)
    scores = cluster_scores(labels, clusters)
    seconds = time.time() - start
    print(f"{'method':<16}{'acc':>8}{'purity':>8}{'nmi':>8}")
    rows = [("vae_clustering", scores)] + list(baseline_scores.items())
    for name, s in rows:
        print(f"{name:<16}{s['acc']:8.4f}{s['purity']:8.4f}{s['nmi']:8.4f}")
    print("cluster sizes:", np.bincount(clusters, minlength=NUM_CLASSES))
    for path in save_grids(x, clusters, decoder, prior, args):
        print("wrote", path)
    path = os.path.join(args.output_dir, "vae_clustering.keras")
    vae.save(path)
    loaded = keras.saving.load_model(path)  # safe mode: no Lambda layers
    pair = [x[:64], x[:64]]
    same = all(
        np.allclose(a, b, atol=1e-5)
        for a, b in zip(
            vae.predict(pair, verbose=0), loaded.predict(pair, verbose=0)
        )
    )
    print(f"saved and reloaded {path} in safe mode: same outputs {same}")
    print(
        f"RESULT acc={scores['acc']:.4f} purity={scores['purity']:.4f} "
        f"nmi={scores['nmi']:.4f} "
        f"kmeans_acc={baseline_scores['kmeans']['acc']:.4f} "
        f"ward_acc={baseline_scores['ward']['acc']:.4f} "
        f"seconds={seconds:.1f} reload_ok={int(same)}"
    )


if __name__ == "__main__":
    main()
