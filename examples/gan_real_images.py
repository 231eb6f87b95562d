"""
Title: Su's variational regularizer on real images: a DCGAN on Fashion-MNIST
Description: the claim of Su Jianlin's first post (plain GAN training
    collapses later on, with `SnapshotPenalty` it stays stable) tested on
    real images: the same small DCGAN, plain and regularized, same seeds,
    one `fit` each, scored every few epochs by a classifier trained once on
    Fashion-MNIST.
What you will see: a line per scoring; a table per seed and arm of the
    classes covered, the KL of the generated class histogram from uniform
    and the Fréchet distance in the classifier's features, at the end and
    at the worst evaluation; a PNG of these curves over the epochs; a
    sample grid per arm.

Su's "unified variational view" (kexue.fm/archives/5716) finds that the
usual generator loss misses a term, `KL(q(x) ‖ q°(x))` with `q°` the
generator before the update, estimated by `λ·E_z‖G(z) - G°(z)‖²`. On
CelebA he reports that without it a DCGAN collapses after about 25 epochs
and that with it training stays stable (images only, no numbers).
`examples/vgan.py` tests this on 2-D mixtures; this script tests it on
Fashion-MNIST's 60,000 training images.

Both arms are the same single-loss GAN (`keras_cool.layers.
AdversarialObjective`, non-saturating loss, Adam(2e-4, β1 = 0.5), batch
64): a DCGAN generator (dense to 7x7, two stride-2 transposed
convolutions, batch normalization) and discriminator (two stride-2
convolutions, LeakyReLU). The regularized arm wraps the generator in
`keras_cool.layers.SnapshotPenalty(λ = --penalty, refresh_every =
--refresh-every)`, as `examples/vgan.py` does. The same seed gives
both arms the same initial weights and the same batches.

The scores come from a small CNN classifier trained on the Fashion-MNIST
training set (cached in `--classifier`; trained by this script when the
file is absent, and its test accuracy printed). On `--eval-samples`
generated images, every `--eval-every` epochs:

- classes covered: classes that receive at least 1 % of the samples (a
  tenth of their share under a uniform histogram);
- KL: `KL(h ‖ uniform)` of the histogram `h` of predicted classes (0:
  balanced, log 10 = 2.30: one class);
- FD (classifier features): the Fréchet distance between Gaussians fitted
  to the classifier's penultimate features of generated images and of
  real training images. It is FID's formula on another network: not
  comparable to published FIDs.

    python examples/gan_real_images.py                # 3 seeds, both arms
    python examples/gan_real_images.py --epochs 10 --seeds 1
    python examples/gan_real_images.py --data-dir DIR # Zalando's IDX files
    python examples/gan_real_images.py --quick        # a smoke run
    python examples/gan_real_images.py --seed 1 --seeds 1 --output-dir D1
    python examples/gan_real_images.py --combine D0 D1 D2  # one table, plot

Each run writes its curves to `OUTPUT_DIR/history_ARM_seedS.json`;
`--combine` reads those files from several folders (runs made one seed at
a time) and prints the table, the `RESULT` line and `curves.png` of them
all, without training.
"""

import argparse
import glob
import json
import os
import time

import keras
import numpy as np
from _cli import HelpFormatter
from _cli import add_quick_argument
from _cli import print_result
from _cli import quick_output_dir
from _data import load_images
from _plots import image_grid
from _plots import save_figure
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

import keras_cool

NUM_CLASSES = 10
TRAIN_IMAGES = 60000  # Fashion-MNIST's training split comes first
CLASS_NAMES = (
    "T-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
)

# ## Settings
#
# `--help` lists every option with its default. `--quick` is the smoke run
# the tests use (256 images, batches of 16, two epochs, a tiny network),
# written to `outputs/gan_real_images/quick/`; it reads the tiny IDX
# fixture in the tests' folder when Fashion-MNIST is not installed.


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder holding Fashion-MNIST's four IDX files; default: the "
        "Debian package's /usr/share/datasets/fashion-mnist",
    )
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument(
        "--seeds", type=int, default=3, help="seeds per arm: seed, seed+1..."
    )
    parser.add_argument(
        "--epochs", type=int, default=30, help="passes over the images"
    )
    parser.add_argument(
        "--eval-every", type=int, default=2, help="epochs between scores"
    )
    parser.add_argument(
        "--train-images",
        type=int,
        default=TRAIN_IMAGES,
        help="training images the GAN sees (the first ones of the training "
        "split)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="images per step"
    )
    parser.add_argument(
        "--latent-dim", type=int, default=64, help="dimensions of z"
    )
    parser.add_argument(
        "--width",
        type=int,
        default=32,
        help="channels of the discriminator's first convolution (the "
        "networks are 1x and 2x this wide)",
    )
    parser.add_argument(
        "--learning-rate", type=float, default=2e-4, help="Adam's step size"
    )
    parser.add_argument(
        "--penalty",
        type=float,
        default=5.0,
        help="λ of SnapshotPenalty in the regularized arm (Su's 5)",
    )
    parser.add_argument(
        "--refresh-every",
        type=int,
        default=5,
        help="k: steps between refreshes of the snapshot G° (1: the "
        "previous step; 5 as in vgan.py)",
    )
    parser.add_argument(
        "--eval-samples",
        type=int,
        default=5000,
        help="generated images per score",
    )
    parser.add_argument(
        "--classifier-epochs",
        type=int,
        default=3,
        help="epochs of the scoring classifier, when it is trained",
    )
    parser.add_argument(
        "--classifier",
        default=None,
        help="cached scoring classifier (.keras); default: "
        "OUTPUT_DIR/classifier.keras (outputs/ is not committed)",
    )
    parser.add_argument(
        "--combine",
        nargs="+",
        default=None,
        metavar="DIR",
        help="train nothing: read the history_*.json files of earlier runs "
        "in these folders and print their table, RESULT line and curves",
    )
    add_quick_argument(parser)
    parser.add_argument(
        "--output-dir",
        default="outputs/gan_real_images",
        help="where the PNGs and the cached classifier go",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.eval_every = 1, 2, 1
        args.train_images, args.eval_samples, args.batch_size = 256, 256, 16
        args.classifier_epochs, args.width, args.latent_dim = 1, 8, 16
    args = quick_output_dir(args)
    if args.classifier is None:
        args.classifier = os.path.join(args.output_dir, "classifier.keras")
    return args


# ## The data
#
# Fashion-MNIST from the Debian package `dataset-fashion-mnist` (or
# `--data-dir`), see `examples/_data.py`; the first 60,000 images are the
# training split, the last 10,000 the test split (used only to print the
# classifier's accuracy). `--quick` falls back to the tests' tiny IDX
# fixture when the data are not installed.

FIXTURE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..",
    "tests",
    "examples",
    "fixtures",
    "fashion_mnist",
)


def load_fashion_mnist(args):
    """(train x, train y, test x, test y), images in [0, 1]."""
    from _data import DatasetNotFound

    try:
        x, y = load_images("fashion_mnist", data_dir=args.data_dir)
    except DatasetNotFound:
        if not args.quick:
            raise
        print("quick run: Fashion-MNIST not installed, using the fixture")
        x, y = load_images("fashion_mnist", data_dir=FIXTURE)
    split = TRAIN_IMAGES if len(x) > TRAIN_IMAGES else len(x) * 2 // 3
    train, test = slice(0, split), slice(split, None)
    if args.quick:  # a few images: the classifier trains in seconds
        train, test = slice(0, min(split, 256)), slice(split, split + 256)
    return x[train], y[train], x[test], y[test]


# ## The scoring classifier
#
# A small CNN; its `features` layer (128 units, before the class layer)
# gives the features of the Fréchet distance. Trained once and cached: the
# file is written to a temporary name and renamed, so an interrupted run
# never leaves a broken cache.


def build_classifier():
    images = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(32, 3, activation="relu")(images)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(64, 3, activation="relu")(h)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(128, activation="relu", name="features")(h)
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(h)
    model = keras.Model(images, logits, name="classifier")
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def scoring_classifier(args, x_train, y_train, x_test, y_test):
    """The cached classifier, trained (and cached) when absent."""
    if os.path.exists(args.classifier):
        classifier = keras.saving.load_model(args.classifier)
        print(f"scoring classifier: loaded {args.classifier}")
    else:
        keras.utils.set_random_seed(12345)
        classifier = build_classifier()
        start = time.time()
        classifier.fit(
            x_train,
            y_train,
            batch_size=128,
            epochs=args.classifier_epochs,
            verbose=0,
        )
        folder = os.path.dirname(args.classifier) or "."
        os.makedirs(folder, exist_ok=True)
        temporary = os.path.join(folder, f".classifier-{os.getpid()}.keras")
        classifier.save(temporary)
        os.replace(temporary, args.classifier)
        print(
            f"scoring classifier: trained in {time.time() - start:.0f} s, "
            f"cached in {args.classifier}"
        )
    if len(x_test):
        _, accuracy = classifier.evaluate(
            x_test, y_test, batch_size=512, verbose=0
        )
        print(f"scoring classifier: test accuracy {accuracy:.4f}")
    features = keras.Model(
        classifier.inputs,
        [classifier.get_layer("features").output, classifier.outputs[0]],
    )
    return features


# ## The scores
#
# Classes covered, KL from uniform and the Fréchet distance, from the
# classifier's features and predicted classes.


def frechet_distance(mean_a, cov_a, mean_b, cov_b):
    """||m_a - m_b||^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))."""
    from scipy.linalg import sqrtm

    root = sqrtm(cov_a @ cov_b)
    if np.iscomplexobj(root):
        root = root.real
    return float(
        np.sum((mean_a - mean_b) ** 2)
        + np.trace(cov_a)
        + np.trace(cov_b)
        - 2 * np.trace(root)
    )


def gaussian(features):
    features = np.asarray(features, "float64")
    return features.mean(0), np.cov(features, rowvar=False)


def class_scores(predicted):
    """(classes covered, KL of the class histogram from uniform)."""
    h = np.bincount(predicted, minlength=NUM_CLASSES) / len(predicted)
    covered = int((h >= 0.1 / NUM_CLASSES).sum())
    nonzero = h[h > 0]
    return covered, float(np.sum(nonzero * np.log(nonzero * NUM_CLASSES)))


class Scorer:
    """Scores a generator on fixed noise; keeps the history."""

    def __init__(self, features, x_real, args):
        self.features, self.args = features, args
        rng = np.random.default_rng(2024)
        real = x_real[rng.permutation(len(x_real))[: args.eval_samples]]
        self.real = gaussian(self.predict(real)[0])
        self.noise = rng.normal(size=(args.eval_samples, args.latent_dim))
        self.noise = self.noise.astype("float32")
        self.history, self.label = [], ""

    def predict(self, images):
        feats, logits = self.features.predict(images, batch_size=512, verbose=0)
        return feats, logits.argmax(-1)

    def __call__(self, generator, epoch):
        images = generator.predict(self.noise, batch_size=512, verbose=0)
        feats, predicted = self.predict((images + 1.0) / 2.0)
        covered, kl = class_scores(predicted)
        fd = frechet_distance(*gaussian(feats), *self.real)
        self.history.append(dict(epoch=epoch, classes=covered, kl=kl, fd=fd))
        print(
            f"{self.label} epoch {epoch}: classes {covered} KL {kl:.3f} "
            f"FD {fd:.2f}",
            flush=True,
        )
        return fd


# ## The GAN
#
# One model, one loss: `AdversarialObjective` routes the discriminator's
# loss to D and the generator's to G. In the regularized arm the generator
# is wrapped in `SnapshotPenalty`, which returns `G(z)` and adds
# `λ·mean((G(z) - G°(z))²)` with `G°` a snapshot of the generator taken
# every `--refresh-every` steps.
# Images are in [-1, 1] (tanh output).


def build_gan(args, penalty):
    w = args.width
    noise = keras.Input((args.latent_dim,), name="noise")
    g = keras.layers.Dense(7 * 7 * 2 * w, use_bias=False)(noise)
    g = keras.layers.BatchNormalization()(g)
    g = keras.layers.ReLU()(g)
    g = keras.layers.Reshape((7, 7, 2 * w))(g)
    g = keras.layers.Conv2DTranspose(w, 4, 2, "same", use_bias=False)(g)
    g = keras.layers.BatchNormalization()(g)
    g = keras.layers.ReLU()(g)
    g = keras.layers.Conv2DTranspose(1, 4, 2, "same", activation="tanh")(g)
    generator = keras.Model(noise, g, name="generator")

    images = keras.Input((28, 28, 1))
    d = keras.layers.Conv2D(w, 4, 2, "same")(images)
    d = keras.layers.LeakyReLU(0.2)(d)
    d = keras.layers.Conv2D(2 * w, 4, 2, "same")(d)
    d = keras.layers.LeakyReLU(0.2)(d)
    d = keras.layers.Flatten()(d)
    discriminator = keras.Model(
        images, keras.layers.Dense(1)(d), name="discriminator"
    )

    real = keras.Input((28, 28, 1), name="real")
    z = keras.Input((args.latent_dim,), name="z")
    if penalty > 0:
        fake = keras_cool.layers.SnapshotPenalty(
            generator, penalty, args.refresh_every, name="snapshot_penalty"
        )(z)
    else:
        fake = generator(z)
    objective = keras_cool.layers.AdversarialObjective(
        discriminator, loss="modified", seed=args.seed
    )
    model = keras.Model([real, z], objective([real, fake]))
    model.compile(keras.optimizers.Adam(args.learning_rate, beta_1=0.5))
    return model, generator


class GanBatches(keras.utils.PyDataset):
    """Shuffled real batches in [-1, 1] with fresh noise, from one seed."""

    def __init__(self, x, args, seed, **kwargs):
        super().__init__(**kwargs)
        self.x, self.args = x * 2.0 - 1.0, args
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(x))

    def __len__(self):
        return len(self.x) // self.args.batch_size

    def __getitem__(self, index):
        size = self.args.batch_size
        rows = self.order[index * size : (index + 1) * size]
        z = self.rng.normal(size=(size, self.args.latent_dim))
        return ((self.x[rows], z.astype("float32")),)

    def on_epoch_end(self):
        self.rng.shuffle(self.order)


# ## Training
#
# One `fit` per arm and seed; `keras_cool.callbacks.Evaluator` scores the
# generator every `--eval-every` epochs (its logged value is the FD; the
# scorer keeps all three numbers).


def train(x, scorer, args, seed, arm, penalty):
    keras.utils.set_random_seed(seed)
    model, generator = build_gan(args, penalty)
    scorer.history, scorer.label = [], f"{arm} seed {seed}"
    scorer(generator, 0)
    evaluator = keras_cool.callbacks.Evaluator(
        lambda _: scorer(generator, len(scorer.history) * args.eval_every),
        name="fd",
        mode="min",
        every_n_epochs=args.eval_every,
    )
    start = time.time()
    model.fit(
        GanBatches(x, args, seed),
        epochs=args.epochs,
        callbacks=[evaluator],
        verbose=0,
    )
    return generator, list(scorer.history), time.time() - start


# ## Looking at the outputs
#
# The curves of the three scores over the epochs, one line per arm and
# seed, and a grid of 64 samples per arm (first seed).


def plot_curves(histories, path):
    figure = Figure(figsize=(12.0, 3.6), layout="constrained")
    panels = (
        ("classes", "classes covered (≥ 1 % of samples)"),
        ("kl", "KL(class histogram ‖ uniform)"),
        ("fd", "FD (classifier features)"),
    )
    for i, (key, label) in enumerate(panels):
        axes = figure.add_subplot(1, 3, i + 1)
        for (arm, seed), history in histories.items():
            axes.plot(
                [h["epoch"] for h in history],
                [h[key] for h in history],
                color="C0" if arm == "plain" else "C1",
                linestyle=("-", "--", ":", "-.")[seed % 4],
                marker="o",
                markersize=2,
                label=f"{arm}, seed {seed}",
            )
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        if key == "fd":
            axes.set_yscale("log")
        if i == 0:
            axes.legend(fontsize=7)
    figure.suptitle(
        "DCGAN on Fashion-MNIST: plain (blue) vs SnapshotPenalty (orange)"
    )
    return save_figure(figure, path)


def summary(history):
    """End and worst values (after the first evaluation) of one run."""
    later = history[1:] or history
    return {
        "classes": history[-1]["classes"],
        "kl": history[-1]["kl"],
        "fd": history[-1]["fd"],
        "min_classes": min(h["classes"] for h in later),
        "worst_kl": max(h["kl"] for h in later),
        "worst_fd": max(h["fd"] for h in later),
    }


def save_history(row, history, folder):
    """Writes one run's row and curve to `folder/history_ARM_seedS.json`."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"history_{row['arm']}_seed{row['seed']}.json")
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
        json.dump(dict(row=row, history=history), f, indent=1)
    os.replace(temporary, path)
    return path


def load_histories(folders):
    """(histories, rows) from the history_*.json files of `folders`."""
    runs = []
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "history_*.json"))):
            with open(path) as f:
                runs.append(json.load(f))
    if not runs:
        raise FileNotFoundError(
            f"--combine: no history_*.json in {folders}; run the script "
            "with --output-dir FOLDER first, one folder per run"
        )
    runs.sort(key=lambda run: (run["row"]["seed"], run["row"]["arm"]))
    rows = [run["row"] for run in runs]
    histories = {
        (r["arm"], r["seed"]): run["history"] for r, run in zip(rows, runs)
    }
    return histories, rows


ARMS = ("plain", "vgan")
KEYS = ("classes", "kl", "fd", "min_classes", "worst_kl", "worst_fd")


def report(args, histories, rows):
    """Prints the table, draws the curves; (medians, seeds, epochs)."""
    print("| arm | seed | " + " | ".join(KEYS) + " | seconds |")
    print("|---" * (len(KEYS) + 3) + "|")
    for row in rows:
        cells = " | ".join(f"{row[k]:.3f}" for k in KEYS)
        seconds = f"{row['seconds']:.0f}"
        print(f"| {row['arm']} | {row['seed']} | {cells} | {seconds} |")
    medians = {
        f"{arm}_{k}": float(np.median([r[k] for r in rows if r["arm"] == arm]))
        for arm in ARMS
        for k in KEYS
        if any(r["arm"] == arm for r in rows)
    }
    path = plot_curves(histories, os.path.join(args.output_dir, "curves.png"))
    print("wrote", path)
    seeds = len({row["seed"] for row in rows})
    epochs = max(h[-1]["epoch"] for h in histories.values())
    return medians, seeds, epochs


def print_medians(args, medians, seeds, epochs):
    print_result(
        args,
        " ".join(f"{k}={v:.4f}" for k, v in medians.items())
        + f" seeds={seeds} epochs={epochs}",
    )


# ## Putting it together


def main(argv=None):
    args = parse_args(argv)
    if args.combine:
        histories, rows = load_histories(args.combine)
        print_medians(args, *report(args, histories, rows))
        return
    x_train, y_train, x_test, y_test = load_fashion_mnist(args)
    print(
        f"Fashion-MNIST: {len(x_train)} training images, {len(x_test)} test; "
        f"backend={keras.backend.backend()}"
    )
    features = scoring_classifier(args, x_train, y_train, x_test, y_test)
    scorer = Scorer(features, x_train, args)
    x = x_train[: args.train_images]
    arms = (("plain", 0.0), ("vgan", args.penalty))
    histories, rows, samples = {}, [], {}
    for seed in range(args.seed, args.seed + args.seeds):
        for arm, penalty in arms:
            generator, history, seconds = train(
                x, scorer, args, seed, arm, penalty
            )
            histories[(arm, seed)] = history
            row = dict(arm=arm, seed=seed, seconds=seconds, **summary(history))
            rows.append(row)
            save_history(row, history, args.output_dir)
            print(
                f"{arm} seed {seed}: end classes {row['classes']} KL "
                f"{row['kl']:.3f} FD {row['fd']:.2f}; worst classes "
                f"{row['min_classes']} KL {row['worst_kl']:.3f} FD "
                f"{row['worst_fd']:.2f} ({seconds:.0f} s)",
                flush=True,
            )
            if seed == args.seed:
                z = scorer.noise[:64]
                samples[arm] = generator.predict(z, verbose=0)

    # Outputs: the Markdown table, the medians, the curves, the sample
    # grids and one `RESULT` line with the medians per arm.
    medians, _, _ = report(args, histories, rows)
    for arm, images in samples.items():
        title = "plain GAN" if arm == "plain" else "with SnapshotPenalty"
        path = image_grid(
            (images + 1.0) / 2.0,
            os.path.join(args.output_dir, f"samples_{arm}.png"),
            f"DCGAN on Fashion-MNIST, {title}, seed {args.seed}, "
            f"epoch {args.epochs}",
            rows=8,
            xlabel="64 samples, the same z for both arms",
            width=4.5,
        )
        print("wrote", path)
    print_medians(args, medians, args.seeds, args.epochs)


if __name__ == "__main__":
    main()
