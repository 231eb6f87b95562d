"""
Title: Training from an HDF5 file with augmentation in worker processes
Description: A `keras_cool.Sequence` reads digits from an HDF5 file, opened
    once in each worker process, and augments every batch with its own
    seeded random generator; `model.fit` runs it on worker processes.
What you will see: that the augmentations differ in every batch and
    worker and repeat exactly with the same seed (workers or not), a PNG of
    one augmented batch as the model sees it, and the held-out accuracy.

1. Writes scikit-learn's digits (a real, offline data set) to an HDF5 file.
2. Reads it through a `keras_cool.Sequence`: the file is opened once in
   each worker process (`open_resources`), samples are shuffled every epoch
   (`epoch_permutation`) and augmented with the per-batch `self.rng`
   (random shift, contrast and noise).
3. Checks the augmentations: distinct, and reproducible from the seed.
4. Trains a small classifier with `model.fit(..., workers=N processes)` and
   evaluates it on held-out clean digits.

    python examples/hdf5_pipeline.py
    python examples/hdf5_pipeline.py --workers 4
    python examples/hdf5_pipeline.py --quick      # a smoke run
"""

import argparse
import os
import pathlib

import h5py
import keras
import numpy as np
from _cli import HelpFormatter
from _cli import add_quick_argument
from _cli import print_result
from _cli import quick_output_dir
from _data import load_images
from _plots import image_grid

import keras_cool

# ## Settings
#
# `--help` lists every option with its default. `--quick` is the smoke run
# the tests use, written to `outputs/hdf5_pipeline/quick/`.


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter
    )
    add_quick_argument(parser)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the split, the shuffles and the augmentations",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs (None: 15; 2 with --quick)",
    )
    parser.add_argument(
        "--output-dir",
        default="outputs/hdf5_pipeline",
        help="where digits.h5 and augmented.png go",
    )
    return quick_output_dir(parser.parse_args(argv))


# ## The data: digits in an HDF5 file
#
# The file is written once, atomically (a temporary file, then a rename),
# so that a worker never sees half a file.


def write_hdf5(path, x, y):
    """Write x and y to `path` atomically (a temporary file, then rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with h5py.File(tmp, "w") as file:
        file.create_dataset("x", data=x, compression="gzip")
        file.create_dataset("y", data=y)
    os.replace(tmp, path)


# ## The pipeline: a `keras_cool.Sequence`
#
# - `open_resources` opens the file once per worker process (an open HDF5
#   handle can be neither pickled nor shared across a fork);
# - `epoch_permutation(n)` is a new shuffle every epoch, the same in every
#   worker;
# - `self.rng` is a generator seeded from (seed, epoch, batch index), so
#   the augmentation of a batch does not depend on which worker makes it.
#
# With `report=True` each batch also says which process made it.


class DigitsFile(keras_cool.Sequence):
    """Batches of augmented digits read from an HDF5 file."""

    def __init__(self, path, indices, batch_size=32, report=False, **kwargs):
        super().__init__(**kwargs)
        self.path = path
        self.indices = np.asarray(indices)
        self.batch_size = batch_size
        self.report = report
        self.file = None

    def open_resources(self):
        # Once per worker process: never pickled, never inherited by fork.
        self.file = h5py.File(self.path, "r")

    def close_resources(self):
        self.file.close()

    def __len__(self):
        return len(self.indices) // self.batch_size

    def __getitem__(self, index):
        order = self.indices[self.epoch_permutation(len(self.indices))]
        rows = np.sort(order[index * self.batch_size :][: self.batch_size])
        x = self.file["x"][rows]
        y = self.file["y"][rows]
        shift = self.rng.integers(-1, 2, size=(len(rows), 2))
        for i, (dy, dx) in enumerate(shift):
            x[i] = np.roll(x[i], (dy, dx), axis=(0, 1))
        contrast = self.rng.uniform(0.7, 1.3, size=(len(rows), 1, 1, 1))
        noise = self.rng.normal(0.0, 0.05, size=x.shape)
        x = np.clip(x * contrast + noise, 0.0, 1.0).astype("float32")
        if self.report:
            return x, y, np.full(len(rows), os.getpid())
        return x, y


# ## Checking the augmentations
#
# One epoch, as a list of batches, with the pids of the processes that
# made them.


def one_epoch(path, indices, seed, **kwargs):
    data = DigitsFile(path, indices, report=True, seed=seed, **kwargs)
    with data:
        batches = list(data)
    x = np.stack([b[0] for b in batches])
    pids = np.concatenate([b[2] for b in batches])
    return x, pids


# ## The model: a small convolutional classifier


def build_model():
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(64, activation="relu")(h)
    outputs = keras.layers.Dense(10, activation="softmax")(h)
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.Adam(3e-3),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


# ## Putting it together
#
# Write the file, split 80/20, check the augmentations (4 epochs: twice
# with 2 workers and the same seed, once in-process, once with another
# seed), then train with worker processes and evaluate on held-out clean
# digits.


def main(argv=None):
    args = parse_args(argv)
    out = pathlib.Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    x, y = load_images("digits", quick=args.quick)
    path = str(out / "digits.h5")
    write_hdf5(path, x, y)
    split = np.random.default_rng(args.seed).permutation(len(x))
    cut = int(0.8 * len(x))
    train, held_out = split[:cut], split[cut:]
    processes = {"workers": args.workers, "use_multiprocessing": True}

    # Augmentations: distinct in every batch and worker, exact on repeat.
    first, pids = one_epoch(path, train, args.seed, **processes)
    again, _ = one_epoch(path, train, args.seed, **processes)
    inline, _ = one_epoch(path, train, args.seed)
    other, _ = one_epoch(path, train, args.seed + 1, **processes)
    flat = first.reshape(len(first), -1)
    distinct = len({row.tobytes() for row in flat}) == len(flat)
    repeat = np.array_equal(first, again) and np.array_equal(first, inline)
    differs = not np.array_equal(first, other)
    workers_used = len(set(pids.tolist()))
    print(
        f"{len(first)} batches from {workers_used} worker processes: "
        f"all distinct={distinct}, same seed repeats exactly (2 workers "
        f"or in-process)={repeat}, another seed differs={differs}"
    )
    image_grid(
        first[0][:32],
        str(out / "augmented.png"),
        "One augmented batch (epoch 0, batch 0), as the model sees it",
        rows=4,
        xlabel="32 digits, each shifted by up to 1 pixel, with random "
        "contrast and noise",
    )

    # Training: the same Sequence, shuffled, on worker processes.
    data = DigitsFile(path, train, seed=args.seed, shuffle=True, **processes)
    model = build_model()
    epochs = args.epochs or (2 if args.quick else 15)
    model.fit(data, epochs=epochs, shuffle=False, verbose=2)
    data.close()
    _, accuracy = model.evaluate(x[held_out], y[held_out], verbose=0)
    print(f"held-out accuracy after {epochs} epochs: {accuracy:.3f}")
    print_result(
        args,
        f"val_acc={accuracy:.4f} workers={workers_used} "
        f"distinct_batches={int(distinct)} repeat_exact={int(repeat)} "
        f"seed_changes={int(differs)} epochs={epochs}",
    )


if __name__ == "__main__":
    main()
