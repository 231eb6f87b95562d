"""Train from an HDF5 file with random augmentation in worker processes.

1. Writes scikit-learn's digits (a real, offline data set) to an HDF5 file.
2. Reads it through a `keras_cool.Sequence`: the file is opened once in
   each worker process (`open_resources`), samples are shuffled every epoch
   (`epoch_permutation`) and augmented with the per-batch `self.rng`
   (random shift, contrast and noise).
3. Shows that the augmentations differ in every batch and worker, and
   repeat exactly with the same seed (workers or not).
4. Trains a small classifier with `model.fit(..., workers=N processes)` and
   evaluates it on held-out clean digits.

Writes `augmented.png` (a batch, as the model sees it) to --output-dir. The
last line is `RESULT key=value ...`.

    python examples/hdf5_pipeline.py [--quick] [--seed 0] [--workers 2]
"""

import argparse
import os
import pathlib
import sys

import h5py
import keras
import numpy as np

import keras_cool

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import load_images  # noqa: E402


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


def write_hdf5(path, x, y):
    """Write x and y to `path` atomically (a temporary file, then rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with h5py.File(tmp, "w") as file:
        file.create_dataset("x", data=x, compression="gzip")
        file.create_dataset("y", data=y)
    os.replace(tmp, path)


def one_epoch(path, indices, seed, **kwargs):
    data = DigitsFile(path, indices, report=True, seed=seed, **kwargs)
    with data:
        batches = list(data)
    x = np.stack([b[0] for b in batches])
    pids = np.concatenate([b[2] for b in batches])
    return x, pids


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--output-dir", default="outputs/hdf5_pipeline")
    args = parser.parse_args()
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
    grid = keras_cool.utils.tile_images(first[0][:32])
    keras_cool.utils.save_png(grid, str(out / "augmented.png"))

    data = DigitsFile(path, train, seed=args.seed, shuffle=True, **processes)
    model = build_model()
    epochs = args.epochs or (2 if args.quick else 15)
    model.fit(data, epochs=epochs, shuffle=False, verbose=2)
    data.close()
    _, accuracy = model.evaluate(x[held_out], y[held_out], verbose=0)
    print(f"held-out accuracy after {epochs} epochs: {accuracy:.3f}")
    print(
        f"RESULT val_acc={accuracy:.4f} workers={workers_used} "
        f"distinct_batches={int(distinct)} repeat_exact={int(repeat)} "
        f"seed_changes={int(differs)} epochs={epochs}"
    )


if __name__ == "__main__":
    main()
