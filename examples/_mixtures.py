"""2-D Gaussian mixtures and their mode metrics, shared by the GAN examples.

Not an example itself (the leading underscore keeps it out of the example
runs). The ring of 8 and the grid of 25 Gaussians follow PacGAN's layout;
the metric is VEEGAN's (2,500 samples, nearest centre, 3-σ rule), reused
by PacGAN and GDPP (see the README's GAN section for their tables).
"""

import argparse
import functools
import time

import numpy as np

MIXTURE_STD = {"ring": 0.01, "grid": 0.05}
# Plot limits of the scatter plots (in data coordinates).
PLOT_LIMIT = {"ring": 1.5, "grid": 5.5}


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


def mixture_scale(name):
    """The largest |coordinate| of a centre: models train on x / scale."""
    return float(np.abs(mixture_centres(name)).max())


def sample_mixture(name, n, rng, return_modes=False):
    """`n` float32 points from the mixture, modes drawn uniformly.

    With `return_modes=True` also returns each point's mode index.
    """
    centres = mixture_centres(name)
    picks = rng.integers(len(centres), size=n)
    noise = rng.normal(scale=MIXTURE_STD[name], size=(n, 2))
    points = (centres[picks] + noise).astype("float32")
    return (points, picks) if return_modes else points


def nearest_mode(points, name):
    """Index of the nearest centre and whether the point is within 3 σ."""
    centres = mixture_centres(name)
    points = np.asarray(points, "float64")
    distance = np.linalg.norm(points[:, None] - centres[None], axis=-1)
    return distance.argmin(1), distance.min(1) <= 3 * MIXTURE_STD[name]


def mode_metrics(samples, name):
    """Return (modes captured, fraction high-quality, reverse KL).

    Each sample goes to its nearest centre; it is high quality (HQ) within 3
    standard deviations of it. A mode is captured when at least one HQ
    sample is nearest to it. The reverse KL is between the histogram of HQ
    samples over modes and the uniform distribution (0 when balanced).
    """
    nearest, hq = nearest_mode(samples, name)
    counts = np.bincount(nearest[hq], minlength=len(mixture_centres(name)))
    modes = int((counts > 0).sum())
    if hq.any():
        p = counts[counts > 0] / counts.sum()
        reverse_kl = float(np.sum(p * np.log(p * len(counts))))
    else:
        reverse_kl = float("nan")
    return modes, float(hq.mean()), reverse_kl


def median_row(rows, keys):
    """Per-key medians of a list of dicts (the summary row of a table)."""
    return {k: float(np.median([row[k] for row in rows])) for k in keys}


def format_table(rows, keys, header=None):
    """A Markdown table of `rows` (dicts) with the given column keys."""
    header = header or keys
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        cells = []
        for k in keys:
            v = row[k]
            cells.append(f"{v:.3g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mlp(
    inputs,
    width,
    depth,
    outputs,
    name,
    spectral_norm=False,
    pack=1,
    fourier=0.0,
):
    """A LeakyReLU(0.2) MLP as a functional model; `inputs` is a
    `keras.Input` or a list of them (concatenated first). With
    `spectral_norm`, every Dense is wrapped in SpectralNormalization.
    With `pack=m > 1` (PacGAN), the MLP scores packs of m consecutive rows
    (joined into one row of m times the features) and every row gets its
    pack's score, so the output keeps one row per input row; the batch
    size must be a multiple of m."""
    import keras

    def dense(units):
        layer = keras.layers.Dense(units)
        if spectral_norm:
            return keras.layers.SpectralNormalization(layer)
        return layer

    h = inputs
    if isinstance(inputs, (list, tuple)):
        h = keras.layers.Concatenate()(list(inputs))
    if fourier:
        h = _fourier_layer()(width // 2, fourier)(h)
    if pack > 1:
        Pack, Unpack = _packing_layers()
        h = Pack(pack)(h)
    for _ in range(depth):
        h = dense(width)(h)
        h = keras.layers.LeakyReLU(0.2)(h)
    h = dense(outputs)(h)
    if pack > 1:
        h = Unpack(pack)(h)
    return keras.Model(inputs, h, name=name)


@functools.cache
def _fourier_layer():
    import keras

    @keras.saving.register_keras_serializable(package="keras_cool_examples")
    class FourierFeatures(keras.layers.Layer):
        """x -> [x, sin(x B), cos(x B)] with a fixed Gaussian B (d x n)
        of standard deviation `scale` (Tancik et al., 2020)."""

        def __init__(self, features, scale, **kwargs):
            super().__init__(**kwargs)
            self.features, self.scale = features, scale

        def build(self, shape):
            self.b = self.add_weight(
                shape=(shape[-1], self.features),
                initializer=keras.initializers.RandomNormal(stddev=self.scale),
                trainable=False,
                name="b",
            )

        def call(self, x):
            p = keras.ops.matmul(x, self.b)
            return keras.ops.concatenate(
                [x, keras.ops.sin(p), keras.ops.cos(p)], axis=-1
            )

        def get_config(self):
            return {
                **super().get_config(),
                "features": self.features,
                "scale": self.scale,
            }

    return FourierFeatures


@functools.cache
def _packing_layers():
    import keras

    @keras.saving.register_keras_serializable(package="keras_cool_examples")
    class Pack(keras.layers.Layer):
        """(batch, d) -> (batch / m, m * d): m consecutive rows as one."""

        def __init__(self, size, **kwargs):
            super().__init__(**kwargs)
            self.size = size

        def call(self, x):
            return keras.ops.reshape(x, (-1, self.size * x.shape[-1]))

        def compute_output_shape(self, shape):
            return (None, self.size * shape[-1])

        def get_config(self):
            return {**super().get_config(), "size": self.size}

    @keras.saving.register_keras_serializable(package="keras_cool_examples")
    class Unpack(keras.layers.Layer):
        """(batch / m, k) -> (batch, k): each pack's row, m times."""

        def __init__(self, size, **kwargs):
            super().__init__(**kwargs)
            self.size = size

        def call(self, x):
            return keras.ops.repeat(x, self.size, axis=0)

        def compute_output_shape(self, shape):
            return (None, shape[-1])

        def get_config(self):
            return {**super().get_config(), "size": self.size}

    return Pack, Unpack


def rejection_sample(generator, classifier, real, n, rng, steps, batch=256):
    """Rejection sampling of `generator` by a density-ratio classifier:
    `n` samples, each kept with probability min(1, exp(c(x) - M)).

    Discriminator rejection sampling (DRS, Azadi et al., 2019) with a
    separate classifier: `classifier` (a fresh model, one logit per point)
    is trained for `steps` steps of binary cross-entropy, `real` points
    against generated ones, G fixed, so that its logit c(x) estimates
    log p_data(x) / p_G(x). Keeping x with probability proportional to that
    ratio turns p_G into p_data where p_G covers it: it drops the points
    between modes and evens out the modes' weights; it cannot add a mode
    that G never reaches. M is the 99th percentile of the logits of the
    first draw. Returns (samples, the share of drawn points kept).
    """
    import keras

    latent_dim = generator.input_shape[-1]

    def draw(m):
        z = rng.normal(size=(m, latent_dim)).astype("float32")
        return generator.predict(z, batch_size=4096, verbose=0)

    half = steps * batch // 2
    x = np.concatenate([real[rng.choice(len(real), half)], draw(half)])
    y = np.concatenate([np.ones(half), np.zeros(half)]).astype("float32")
    order = rng.permutation(2 * half)
    classifier.compile(
        keras.optimizers.Adam(1e-3, beta_1=0.5),
        keras.losses.BinaryCrossentropy(from_logits=True),
    )
    classifier.fit(x[order], y[order], batch_size=batch, verbose=0)

    kept, drawn, bound = [], 0, None
    while sum(len(k) for k in kept) < n:
        if drawn > 1000 * n:
            raise RuntimeError("rejection sampling kept almost nothing")
        x = draw(10 * n)
        logit = classifier.predict(x, batch_size=4096, verbose=0)[:, 0]
        if bound is None:
            bound = np.percentile(logit, 99)
        keep = rng.random(len(x)) < np.exp(np.minimum(logit - bound, 0.0))
        kept.append(x[keep])
        drawn += len(x)
    kept = np.concatenate(kept)
    return kept[:n], len(kept) / drawn


def add_rejection_arguments(parser):
    """`--rejection/--no-rejection`, `--rejection-fourier` and
    `--rejection-steps`, shared by the GAN examples."""
    parser.add_argument(
        "--rejection",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also report G's samples after rejection sampling by a "
        "density-ratio classifier (DRS); the raw numbers come first",
    )
    parser.add_argument(
        "--rejection-fourier",
        type=float,
        default=3.0,
        help="scale of the Fourier features of the DRS classifier's input",
    )
    parser.add_argument(
        "--rejection-steps",
        type=int,
        default=3000,
        help="training steps of the DRS classifier",
    )


def rejection_metrics(
    generator, real, scale, name, rng, args, return_samples=False
):
    """Scores of 2,500 samples of `generator` after rejection sampling
    (`rejection_sample`), with a fresh classifier of G's width that sees
    random Fourier features of its input.

    `real` are training points (divided by `scale`). Returns a dict:
    `drs_modes`, `drs_hq` (%), `drs_rkl` (as `mode_metrics`), `drs_kept`
    (% of G's samples kept) and `drs_s` (seconds). With `args.quick`, the
    classifier trains 10 steps. With `return_samples`, returns
    `(dict, the kept samples in data coordinates)`.
    """
    import keras

    start = time.time()
    classifier = mlp(
        keras.Input((2,)),
        args.width,
        3,
        1,
        "ratio",
        fourier=args.rejection_fourier,
    )
    steps = 10 if args.quick else args.rejection_steps
    kept, rate = rejection_sample(generator, classifier, real, 2500, rng, steps)
    modes, hq, reverse_kl = mode_metrics(kept * scale, name)
    scores = {
        "drs_modes": modes,
        "drs_hq": 100 * hq,
        "drs_rkl": reverse_kl,
        "drs_kept": 100 * rate,
        "drs_s": time.time() - start,
    }
    return (scores, kept * scale) if return_samples else scores


def save_scatter(samples, name, path, rng, title, label="generated"):
    """Scatter plot of `samples` (blue) over 2,500 real points (red), with
    the modes captured and the share of high-quality samples in the title.
    """
    from _plots import scatter

    modes, hq, _ = mode_metrics(samples, name)
    total = len(mixture_centres(name))
    return scatter(
        samples,
        sample_mixture(name, 2500, rng),
        path,
        f"{title}: {modes}/{total} modes, {100 * hq:.1f} % high quality",
        PLOT_LIMIT[name],
        label=label,
    )
