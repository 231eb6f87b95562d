"""Helpers shared by the examples: data sets that work offline.

Not an example itself (the leading underscore keeps it out of the example
runs). Real downloads (MNIST, Fashion-MNIST) stay behind flags for users
with a network.
"""

import numpy as np


def load_images(name="digits", quick=False):
    """Return (x, y): float32 images in [0, 1] shaped (n, h, w, 1), int labels.

    `digits` is scikit-learn's bundled 8x8 handwritten digits (1,797
    images, works offline); `mnist` and `fashion_mnist` download through
    `keras.datasets` (28x28, train and test joined).
    """
    if name == "digits":
        from sklearn.datasets import load_digits

        data = load_digits()
        x = (data.images / 16.0).astype("float32")[..., None]
        y = data.target.astype("int64")
    elif name in ("mnist", "fashion_mnist"):
        import keras

        loader = getattr(keras.datasets, name)
        (x1, y1), (x2, y2) = loader.load_data()
        x = (np.concatenate([x1, x2]) / 255.0).astype("float32")[..., None]
        y = np.concatenate([y1, y2]).astype("int64")
    else:
        raise ValueError(
            f"Unknown dataset {name!r}: use digits, mnist or fashion_mnist."
        )
    if quick:
        x, y = x[:256], y[:256]
    return x, y


def add_dataset_argument(parser):
    """Adds `--dataset digits|mnist|fashion_mnist` (see `load_images`)."""
    parser.add_argument(
        "--dataset",
        default="digits",
        choices=["digits", "mnist", "fashion_mnist"],
        help="digits: scikit-learn's 8x8 digits (offline); mnist and "
        "fashion_mnist download through keras.datasets.",
    )


def hungarian_accuracy(labels, clusters):
    """Clustering accuracy under the best one-to-one cluster→label map.

    The map is found with the Hungarian algorithm
    (`scipy.optimize.linear_sum_assignment`); clusters left without a
    label (more clusters than labels) count as wrong.
    """
    from scipy.optimize import linear_sum_assignment

    labels, clusters = np.asarray(labels), np.asarray(clusters)
    counts = np.zeros((clusters.max() + 1, labels.max() + 1), "int64")
    np.add.at(counts, (clusters, labels), 1)
    rows, cols = linear_sum_assignment(-counts)
    return counts[rows, cols].sum() / len(labels)


def purity(labels, clusters):
    """Each cluster votes for its most frequent label (many-to-one map)."""
    labels, clusters = np.asarray(labels), np.asarray(clusters)
    counts = np.zeros((clusters.max() + 1, labels.max() + 1), "int64")
    np.add.at(counts, (clusters, labels), 1)
    return counts.max(axis=1).sum() / len(labels)


def cluster_scores(labels, clusters):
    """Dict with Hungarian accuracy `acc`, `purity` and `nmi`."""
    from sklearn.metrics import normalized_mutual_info_score

    return {
        "acc": hungarian_accuracy(labels, clusters),
        "purity": purity(labels, clusters),
        "nmi": normalized_mutual_info_score(labels, clusters),
    }


def classical_clusterings(x, num_clusters, seed=0, max_ward=10000):
    """k-means (k-means++, 10 restarts) and Ward clusters of flat data.

    Returns a dict name -> cluster ids, the baselines an unsupervised
    model must beat on the same data. Ward needs memory quadratic in the
    number of points: above `max_ward` points it clusters a random
    subset and gives every other point the cluster of the nearest Ward
    centroid.
    """
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.cluster import KMeans

    x = np.asarray(x, "float64").reshape(len(x), -1)
    kmeans = KMeans(num_clusters, n_init=10, random_state=seed)
    ward = AgglomerativeClustering(num_clusters, linkage="ward")
    if len(x) <= max_ward:
        ward_ids = ward.fit_predict(x)
    else:
        rng = np.random.default_rng(seed)
        subset = x[rng.choice(len(x), max_ward, replace=False)]
        subset_ids = ward.fit_predict(subset)
        centroids = np.stack(
            [subset[subset_ids == k].mean(0) for k in range(num_clusters)]
        )
        distances = (
            (x**2).sum(1, keepdims=True)
            - 2 * x @ centroids.T
            + (centroids**2).sum(1)
        )
        ward_ids = distances.argmin(1)
    return {"kmeans": kmeans.fit_predict(x), "ward": ward_ids}


# 2-D Gaussian mixtures (PacGAN layout) and the VEEGAN/PacGAN mode metrics.
MIXTURE_STD = {"ring": 0.01, "grid": 0.05}


def mixture_centres(name):
    """Centres of `ring` (8 on the unit circle, angles 2πk/8) or `grid`
    (25 at {-4, -2, 0, 2, 4}²)."""
    if name == "ring":
        angles = 2 * np.pi * np.arange(8) / 8
        return np.stack([np.cos(angles), np.sin(angles)], 1)
    if name == "grid":
        axis = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
        return np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    raise ValueError(f"Unknown mixture {name!r}: use ring or grid.")


def sample_mixture(name, n, rng):
    """`n` float32 points from the mixture, modes drawn uniformly."""
    centres = mixture_centres(name)
    picks = rng.integers(len(centres), size=n)
    noise = rng.normal(scale=MIXTURE_STD[name], size=(n, 2))
    return (centres[picks] + noise).astype("float32")


def mode_metrics(samples, name):
    """Return (modes captured, fraction high-quality, reverse KL).

    Each sample goes to its nearest centre; it is high quality (HQ) within 3
    standard deviations of it. A mode is captured when at least one HQ
    sample is nearest to it. The reverse KL is between the histogram of HQ
    samples over modes and the uniform distribution (0 when balanced).
    """
    centres = mixture_centres(name)
    samples = np.asarray(samples, "float64")
    distance = np.linalg.norm(samples[:, None] - centres[None], axis=-1)
    nearest = distance.argmin(1)
    hq = distance.min(1) <= 3 * MIXTURE_STD[name]
    counts = np.bincount(nearest[hq], minlength=len(centres))
    modes = int((counts > 0).sum())
    if hq.any():
        p = counts[counts > 0] / counts.sum()
        reverse_kl = float(np.sum(p * np.log(p * len(centres))))
    else:
        reverse_kl = float("nan")
    return modes, float(hq.mean()), reverse_kl
