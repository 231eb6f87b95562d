"""
Title: Post-hoc EMA: choose the averaging after training
Description: Train a digits classifier once with two power-function EMA
    profiles and snapshots, then rebuild the average of any width
    (`sigma_rel`) from the snapshots and pick the one with the best
    validation loss, without training again.
What you will see: the validation loss against `sigma_rel` (a labelled
    PNG), the raw weights' loss beside it, and a table that compares
    rebuilt averages with profiles tracked at those widths in the same run.

Karras et al. (2024) track a *power-function* EMA, whose averaging window
grows with training: its width is a fixed fraction `sigma_rel` of the
training so far. With two such profiles saved every N steps, a least-squares
mix of the snapshots gives the average of any other width. Here
`keras_cool.callbacks.ExponentialMovingAverage(sigma_rel=(0.05, 0.10),
snapshot_every=N, snapshot_dir=...)` does the tracking, `synthesize` and
`swapped_weights(sigma_rel=...)` the rebuilding; three more callbacks
track other widths for real, to check the rebuilt ones against.

    python examples/posthoc_ema.py            # scikit-learn digits, offline
    python examples/posthoc_ema.py --quick    # a smoke run
"""

import argparse
import os

import keras
import numpy as np
from _cli import HelpFormatter
from _cli import add_quick_argument
from _cli import print_result
from _cli import quick_output_dir
from _data import load_images
from _plots import save_figure
from matplotlib.figure import Figure

import keras_cool

# ## Settings
#
# Everything the story below uses; `--help` lists the options with their
# defaults. `--quick` is the few-second smoke run the tests use, written
# to `outputs/posthoc_ema/quick/`.

TRACKED = (0.05, 0.10)  # the two profiles that are saved in snapshots
CHECKED = (0.03, 0.07, 0.15)  # widths tracked for real, to compare with


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--epochs", type=int, default=40, help="passes over the training set"
    )
    parser.add_argument(
        "--batch-size", type=int, default=32, help="images per step"
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=0.05,
        help="SGD step size (large: the raw weights are noisy, which is "
        "where averaging helps)",
    )
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=20,
        help="optimizer steps between two snapshots of the profiles",
    )
    parser.add_argument(
        "--sweep",
        type=int,
        default=25,
        help="how many sigma_rel values the post-hoc sweep tries, "
        "log-spaced from 0.01 to 0.28",
    )
    add_quick_argument(parser)
    parser.add_argument(
        "--output-dir",
        default="outputs/posthoc_ema",
        help="where the snapshots and the PNG go",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.sweep, args.snapshot_every = 3, 5, 4
    return quick_output_dir(args)


# ## The data
#
# scikit-learn's 1,797 8x8 digits (no download), split once into 1,200
# training and 597 validation images.


def load_data(args):
    x, y = load_images("digits", quick=args.quick)
    order = np.random.default_rng(args.seed).permutation(len(x))
    x, y = x[order], y[order]
    cut = len(x) * 2 // 3
    print(f"data: {cut} training, {len(x) - cut} validation digits")
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


# ## The model
#
# A small convnet. Plain SGD with a large step keeps the raw weights
# noisy: the average over the last part of training is then better than
# the last weights, and how long that part should be is the question.


def build_model(shape):
    model = keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
            keras.layers.Conv2D(32, 3, activation="relu", strides=2),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    return model


# ## Training once
#
# One callback tracks the two profiles of `TRACKED` in the same compiled
# update and writes both every `--snapshot-every` steps (atomically, to
# `snapshots/ema-<step>.npz`; a crashed run resumes with
# `ema.load_state(ema.latest_snapshot())`). Three more callbacks track the
# widths of `CHECKED` for real: they are only here to check the rebuilt
# averages against.


def train(model, train_data, args):
    model.compile(
        keras.optimizers.SGD(args.learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    folder = os.path.join(args.output_dir, "snapshots")
    for old in os.listdir(folder) if os.path.isdir(folder) else []:
        os.remove(os.path.join(folder, old))  # a fresh run, a fresh record
    ema = keras_cool.callbacks.ExponentialMovingAverage(
        sigma_rel=TRACKED,
        snapshot_every=args.snapshot_every,
        snapshot_dir=folder,
        validate_on_ema=False,
    )
    checks = {
        s: keras_cool.callbacks.ExponentialMovingAverage(
            sigma_rel=s, validate_on_ema=False
        )
        for s in CHECKED
    }
    history = model.fit(
        *train_data,
        batch_size=args.batch_size,
        epochs=args.epochs,
        verbose=0,
        callbacks=[ema, *checks.values()],
    )
    loss = history.history["loss"]
    count = len(os.listdir(folder))
    print(f"training loss: epoch 1 {loss[0]:.4f}, last {loss[-1]:.4f}")
    print(f"{ema.step} steps, {count} snapshots of {len(TRACKED)} profiles")
    return ema, checks


# ## Choosing sigma_rel after training
#
# For each width of the sweep, `swapped_weights(sigma_rel=s)` puts the
# rebuilt average in the model for the length of the `with` block, and
# the validation loss is measured on it. The raw weights come back
# bit-exactly afterwards.


def validation_loss(model, val_data):
    loss, accuracy = model.evaluate(*val_data, batch_size=600, verbose=0)
    return loss, accuracy


def sweep(model, ema, val_data, args):
    widths = np.geomspace(0.01, 0.28, args.sweep)
    scores = []
    for s in widths:
        with ema.swapped_weights(sigma_rel=float(s)):
            scores.append(validation_loss(model, val_data))
    raw = validation_loss(model, val_data)
    best = int(np.argmin([loss for loss, _ in scores]))
    print(f"raw weights: validation loss {raw[0]:.4f}, accuracy {raw[1]:.4f}")
    print(
        f"best post-hoc width sigma_rel={widths[best]:.3f}: validation "
        f"loss {scores[best][0]:.4f}, accuracy {scores[best][1]:.4f}"
    )
    return widths, scores, raw, best


# ## Rebuilt against tracked
#
# At the widths of `CHECKED`, the average rebuilt from the snapshots and
# the one tracked by its own callback should agree: the table gives the
# largest relative difference of their weights (over the variables) and
# both validation losses.


def compare(model, ema, checks, val_data):
    rows = []
    print("sigma_rel  weights rel. diff.  val. loss rebuilt  val. loss tracked")
    for s, check in checks.items():
        rebuilt = ema.synthesize(s)
        tracked = check.ema_weights()
        difference = max(
            np.linalg.norm(a - b) / np.linalg.norm(b)
            for a, b in zip(rebuilt, tracked)
        )
        with ema.swapped_weights(sigma_rel=s):
            rebuilt_loss = validation_loss(model, val_data)[0]
        with check.swapped_weights():
            tracked_loss = validation_loss(model, val_data)[0]
        rows.append((s, difference, rebuilt_loss, tracked_loss))
        print(
            f"{s:9.2f}  {difference:18.2e}  {rebuilt_loss:17.4f}  "
            f"{tracked_loss:17.4f}"
        )
    return rows


# ## The figure
#
# `validation_loss.png`: the post-hoc sweep as a line, the tracked
# profiles as markers on it, and the raw weights' loss as a dashed level.


def plot(widths, scores, raw, rows, args):
    figure = Figure(figsize=(6.0, 4.0), layout="constrained")
    axes = figure.add_subplot()
    axes.plot(
        widths,
        [loss for loss, _ in scores],
        marker="o",
        markersize=3,
        label="rebuilt from snapshots (post hoc)",
    )
    axes.plot(
        [r[0] for r in rows],
        [r[3] for r in rows],
        linestyle="none",
        marker="s",
        markerfacecolor="none",
        markersize=9,
        label="tracked at that width during training",
    )
    axes.axhline(raw[0], linestyle="--", color="C2", label="raw weights")
    for s in TRACKED:
        axes.axvline(s, linestyle=":", color="gray")
    axes.set_xscale("log")
    axes.set_xlabel("sigma_rel (EMA width / training length; dotted: saved)")
    axes.set_ylabel("validation cross-entropy")
    axes.set_title("Post-hoc EMA on the digits: one run, any averaging width")
    axes.grid(alpha=0.3)
    axes.legend()
    path = save_figure(figure, os.path.join(args.output_dir, "loss.png"))
    print("wrote", path)


# ## Putting it together


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    train_data, val_data = load_data(args)
    model = build_model(train_data[0].shape[1:])
    ema, checks = train(model, train_data, args)
    widths, scores, raw, best = sweep(model, ema, val_data, args)
    rows = compare(model, ema, checks, val_data)
    plot(widths, scores, raw, rows, args)
    print_result(
        args,
        f"best_sigma_rel={widths[best]:.4f} "
        f"best_val_loss={scores[best][0]:.4f} "
        f"best_val_accuracy={scores[best][1]:.4f} "
        f"raw_val_loss={raw[0]:.4f} "
        f"max_rebuild_difference={max(r[1] for r in rows):.2e}",
    )


if __name__ == "__main__":
    main()
