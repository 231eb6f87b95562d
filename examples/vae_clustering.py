"""
Title: One-step clustering with a VAE and a Gaussian-mixture prior
Description: Su Jianlin's clustering VAE on the 8x8 digits, next to
    k-means, Ward, spectral clustering, a Gaussian mixture and UMAP.
What you will see: a table of clustering accuracy, purity and NMI for
    the VAE and the classical baselines, the cluster sizes, a PNG of real
    digits per cluster and one of samples generated per cluster, and a
    safe-mode reload of the saved model.

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

1. neighbour pairs: each image is trained together with its 10 nearest
   neighbours in pixel space. A UMAP-style loss pulls their codes
   together and pushes other codes apart (`NeighbourEmbedding`), and
   SCAN's agreement loss asks their cluster probabilities to agree
   (`NeighbourAgreement`);
2. a strong batch-level balance term (`marginal_weight=50`, batches of
   256), since the digit classes are about equally frequent;
3. restarts: after one shared warm-up, the clustering VAE is started 6
   times from k-means partitions of the codes (one k-means run each) and
   trained briefly; the restart with the lowest VAE loss is trained on.
   k-means' own criterion (inertia) tends to pick a partition that
   merges two digits and splits another; the VAE loss does not.

    python examples/vae_clustering.py                 # digits, offline
    python examples/vae_clustering.py --seed 3        # another seed
    python examples/vae_clustering.py --dataset mnist # needs a network
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter
    )
    add_dataset_argument(parser)
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--epochs",
        type=int,
        default=100,
        help="epochs of the winning restart's clustering VAE",
    )
    parser.add_argument(
        "--warmup-epochs",
        type=int,
        default=100,
        help="epochs of the autoencoder warm-up",
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
        "--hidden", type=int, default=256, help="units of the widest layer"
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
        default=50.0,
        help="weight of the batch-level balance term "
        "KL(mean_batch p(y|z) || uniform)",
    )
    parser.add_argument(
        "--neighbour-weight",
        type=float,
        default=5.0,
        help="weight of the nearest-neighbour agreement loss (0: off)",
    )
    parser.add_argument(
        "--embedding-weight",
        type=float,
        default=5.0,
        help="weight of the neighbour-embedding loss on the codes (0: off)",
    )
    parser.add_argument(
        "--neighbours",
        type=int,
        default=10,
        help="nearest neighbours paired with each image",
    )
    parser.add_argument(
        "--restarts",
        type=int,
        default=6,
        help="k-means starts of the clustering VAE after the warm-up",
    )
    parser.add_argument(
        "--restart-epochs",
        type=int,
        default=30,
        help="epochs each restart trains before they are compared",
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
    if args.quick:
        args.epochs, args.warmup_epochs, args.hidden = 2, 2, 32
        args.restarts, args.restart_epochs = 2, 2
    return quick_output_dir(args)


# ## The data and its nearest neighbours
#
# The default data set is scikit-learn's 8x8 handwritten digits (1,797
# images, bundled, so the example runs offline); `--dataset mnist` loads
# MNIST through `keras.datasets` for users with a network. Each image is
# paired with each of its `--neighbours` nearest neighbours in pixel space
# (10 by default), so one epoch over the pairs sees every image 10 times;
# the epoch counts below are rescaled so that `--epochs` still counts
# passes over the images. On the digits, 96.5 % of these neighbours have
# the same label as the image (98.8 % for the first one), so "neighbours
# share a cluster" is a strong hint that needs no labels.


def nearest_neighbours(x, k):
    """Indices (n, k) of each image's k nearest neighbours (pixels)."""
    from sklearn.neighbors import NearestNeighbors

    flat = x.reshape(len(x), -1)
    k = min(k, len(x) - 1)
    search = NearestNeighbors(n_neighbors=k + 1).fit(flat)
    return search.kneighbors(flat, return_distance=False)[:, 1:]


def neighbour_pairs(x, nearest):
    """All (image, neighbour) pairs: `k * n` rows of each."""
    k = nearest.shape[1]
    index = np.repeat(np.arange(len(x)), k)
    return x[index], x[nearest.reshape(-1)]


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
#    `--restart-epochs` (30). Its loss on the training pairs (the negative
#    ELBO plus the balance and neighbour terms: the objective itself) is
#    the criterion; the restart with the lowest loss wins;
# 3. the winner's clustering VAE trains on for `--epochs` (100).
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


def train(x, args, labels=None):
    """Builds and trains the models.

    Returns `(models, seconds, cpu_seconds)`: the models of
    `build_models` and the wall-clock and process CPU time taken.
    `labels`, when given, only annotate the printout of the restarts.
    """
    start, cpu_start = time.time(), time.process_time()
    models = build_models(x.shape[1:], args)
    encoder, classifier, decoder, prior, autoencoder, vae = models
    nearest = nearest_neighbours(x, args.neighbours)
    pairs = list(neighbour_pairs(x, nearest))
    k = nearest.shape[1]
    fit = dict(batch_size=args.batch_size, shuffle=True, verbose=0)

    def epochs(n):  # each epoch sees every image once on average
        return max(1, round(n / k))

    autoencoder.fit(pairs, pairs[0], epochs=epochs(args.warmup_epochs), **fit)
    classifier.compile(
        keras.optimizers.Adam(args.learning_rate),
        "sparse_categorical_crossentropy",
    )
    warm = [model.get_weights() for model in (encoder, decoder, classifier)]
    best = None
    for restart in range(args.restarts):
        for model, weights in zip((encoder, decoder, classifier), warm):
            model.set_weights(weights)
        seed = args.seed * 1000 + restart
        initial = initialise_from_kmeans(
            encoder, classifier, prior, x, seed, args
        )
        reset_optimizer(vae)
        vae.fit(pairs, pairs[0], epochs=epochs(args.restart_epochs), **fit)
        loss = vae.evaluate(pairs, pairs[0], batch_size=512, verbose=0)
        loss = float(np.ravel(loss)[0])
        if labels is not None:  # the labels only annotate the printout
            acc = cluster_scores(
                labels, predict_clusters(encoder, classifier, x)
            )["acc"]
            print(
                f"restart {restart}: loss {loss:.4f} (k-means start acc "
                f"{cluster_scores(labels, initial)['acc']:.4f}, after "
                f"{args.restart_epochs} epochs {acc:.4f})"
            )
        if best is None or loss < best[0]:
            best = (loss, vae.get_weights())
    vae.set_weights(best[1])
    reset_optimizer(vae)
    vae.fit(pairs, pairs[0], epochs=epochs(args.epochs), **fit)
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
# What an unsupervised model has to beat, on the same pixels: k-means
# (k-means++, 10 restarts), Ward's agglomerative clustering, spectral
# clustering on a 10-nearest-neighbour graph, a full-covariance Gaussian
# mixture on 20 PCA components and, when `umap-learn` is installed
# (`pip install umap-learn`), k-means on a 10-dimensional UMAP embedding
# (left out with `--quick`: its first call compiles numba code). Each is
# timed. They are numpy / scikit-learn code, so they give the same
# clusters on every Keras backend; `--no-baselines` skips them.


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


def classical_clusterings(x, num_clusters, seed=0, use_umap=True):
    """Dict name -> (cluster ids, seconds) of the classical baselines.

    UMAP + k-means is added when `umap-learn` is installed and `use_umap`.
    """
    from sklearn.cluster import KMeans
    from sklearn.cluster import SpectralClustering
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    x = np.asarray(x, "float64").reshape(len(x), -1)

    def kmeans(data):
        return KMeans(num_clusters, n_init=10, random_state=seed).fit_predict(
            data
        )

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
        codes = PCA(20, random_state=seed).fit_transform(data)
        gmm = GaussianMixture(num_clusters, random_state=seed)
        return gmm.fit(codes).predict(codes)

    methods = {
        "kmeans": kmeans,
        "ward": lambda data: _ward(data, num_clusters, seed),
        "spectral": spectral,
        "pca20_gmm": pca_gmm,
    }
    try:
        if not use_umap:
            raise ImportError("UMAP not wanted")
        import umap

        def umap_kmeans(data):
            reducer = umap.UMAP(n_components=10, random_state=seed)
            return kmeans(reducer.fit_transform(data))

        methods["umap10_kmeans"] = umap_kmeans
    except ImportError:
        pass
    results = {}
    for name, method in methods.items():
        start = time.time()
        ids = method(x)
        if ids is not None:
            results[name] = (ids, time.time() - start)
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
    return [
        image_grid(
            real,
            os.path.join(args.output_dir, "clusters.png"),
            "Real digits per cluster of the clustering VAE",
            rows=NUM_CLASSES,
            row_labels=labels,
            ylabel="cluster (its size)",
            xlabel=f"{per_row} random members of each cluster",
            width=4.5,
        ),
        image_grid(
            generated,
            os.path.join(args.output_dir, "generated.png"),
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
    x, labels = load_images(args.dataset, quick=args.quick)
    print(f"data: {args.dataset}, {len(x)} images of {x.shape[1:]}")

    baselines = {}
    if not args.no_baselines:
        baselines = classical_clusterings(
            x, NUM_CLASSES, seed=args.seed, use_umap=not args.quick
        )

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
