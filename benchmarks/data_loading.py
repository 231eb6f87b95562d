"""Data loaders feeding `fit`, side by side: batches/s and first-batch time.

One CPU-bound NumPy batch function (random crops, flips, brightness, noise
and a blur of a batch of images: 8-20 ms on one core) feeds `fit` of
a tiny model through every loader a Keras user can pick, with 2 workers:

- keras_cool `Sequence`, worker processes started per epoch ("fresh") and
  kept across epochs ("persistent"), default start method;
- `keras.utils.PyDataset(workers=2, use_multiprocessing=True)`;
- torch `DataLoader(num_workers=2)` (when torch is installed);
- `tf.data` with `map(numpy_function, num_parallel_calls=2)` (when
  TensorFlow is installed).

Each loader runs one warm-up `fit`, then `fit(epochs=E, shuffle=False)` in
interleaved rounds (`shuffle=False`: `fit`'s default shuffles the batch
indices it asks a `PyDataset` for, so a keras_cool `Sequence` could not
prefetch ahead; shuffling belongs to the loader, `Sequence(shuffle=True)`
or `DataLoader(shuffle=True)`, and costs the same on this random data),
rotated, so no loader always runs first. A callback records the time of
every batch start: "first" is the time from the start of an epoch
to the start of its second batch (the first batch fetched and trained),
"steady" the batches per second after that. The last line is
`data_loading: ratio=R (...)` with R the steady batches/s of the faster
keras_cool loader over that of the fastest other loader, by median (the
min-based ratio is printed beside it); R >= 1 means keras_cool is at least
as fast.

    python benchmarks/data_loading.py [--quick] [--batches N] [--repeats R]
"""

import argparse
import importlib.util
import os
import time

import keras
import numpy as np
from _timing import interleaved
from _timing import medians
from _timing import minimums
from _timing import ratio_line

import keras_cool

BATCH, SIZE, PAD, CLASSES = 64, 32, 4, 10


def augment(seed, index):
    """One batch: (images after augmentation, downsampled; labels)."""
    rng = np.random.default_rng([seed, index])
    images = rng.random((BATCH, SIZE, SIZE, 3), dtype=np.float32)
    labels = rng.integers(0, CLASSES, size=(BATCH,)).astype("int32")
    padded = np.pad(
        images, ((0, 0), (PAD, PAD), (PAD, PAD), (0, 0)), mode="reflect"
    )
    out = np.empty_like(images)
    offsets = rng.integers(0, 2 * PAD + 1, size=(BATCH, 2))
    flips = rng.random(BATCH) < 0.5
    for i in range(BATCH):
        dy, dx = offsets[i]
        crop = padded[i, dy : dy + SIZE, dx : dx + SIZE]
        out[i] = crop[:, ::-1] if flips[i] else crop
    out = out * rng.uniform(0.8, 1.2, (BATCH, 1, 1, 1)).astype(np.float32)
    out = out + rng.normal(0.0, 0.05, out.shape).astype(np.float32)
    blurred = out.copy()
    for axis in (1, 2):
        for shift in (-1, 1):
            blurred += np.roll(out, shift, axis=axis)
    blurred /= 5.0
    mean = blurred.mean(axis=(1, 2, 3), keepdims=True)
    std = blurred.std(axis=(1, 2, 3), keepdims=True) + 1e-6
    x = np.ascontiguousarray(((blurred - mean) / std)[:, ::2, ::2])
    return x, labels


class CoolBatches(keras_cool.Sequence):
    def __init__(self, count, **kwargs):
        super().__init__(**kwargs)
        self.count = count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return augment(self.seed, index)


class KerasBatches(keras.utils.PyDataset):
    def __init__(self, count, seed, **kwargs):
        super().__init__(**kwargs)
        self.count = count
        self.seed = seed

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return augment(self.seed, index)


def torch_loader(count, seed):
    import torch.utils.data

    class Batches(torch.utils.data.Dataset):
        def __len__(self):
            return count

        def __getitem__(self, index):
            return augment(seed, index)

    return torch.utils.data.DataLoader(
        Batches(), batch_size=None, num_workers=2, persistent_workers=True
    )


def tf_dataset(count, seed):
    import tensorflow as tf

    def load(index):
        return augment(seed, int(index))

    def mapped(index):
        x, y = tf.numpy_function(load, [index], [tf.float32, tf.int32])
        x.set_shape((BATCH, SIZE // 2, SIZE // 2, 3))
        y.set_shape((BATCH,))
        return x, y

    return (
        tf.data.Dataset.range(count)
        .map(mapped, num_parallel_calls=2, deterministic=True)
        .prefetch(2)
    )


class BatchClock(keras.callbacks.Callback):
    """Times of the epoch starts and batch starts (no batch-end hook, so
    Keras keeps its asynchronous dispatch)."""

    def on_train_begin(self, logs=None):
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append([time.perf_counter()])

    def on_train_batch_begin(self, batch, logs=None):
        self.epochs[-1].append(time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        self.epochs[-1].append(time.perf_counter())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    count = args.batches or (6 if args.quick else 120)
    epochs = args.epochs or (1 if args.quick else 2)
    repeats = args.repeats or (1 if args.quick else 3)
    start = time.perf_counter()
    for i in range(5):
        augment(args.seed, i)
    per_batch = (time.perf_counter() - start) / 5
    print(
        f"backend={keras.backend.backend()} batches={count} epochs={epochs} "
        f"repeats={repeats} workers=2 load={os.getloadavg()[0]:.2f}; "
        f"one batch in this process: {1e3 * per_batch:.1f} ms"
    )

    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential(
        [
            keras.Input((SIZE // 2, SIZE // 2, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(CLASSES),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    loaders = {}
    for name, persistent in (("cool_fresh", False), ("cool_persistent", True)):
        loaders[name] = CoolBatches(
            count,
            seed=args.seed,
            workers=2,
            use_multiprocessing=True,
            persistent_workers=persistent,
        )
    loaders["pydataset"] = KerasBatches(
        count, args.seed, workers=2, use_multiprocessing=True
    )
    if importlib.util.find_spec("torch") is not None:
        loaders["torch_dataloader"] = torch_loader(count, args.seed)
    if importlib.util.find_spec("tensorflow") is not None:
        loaders["tf_data"] = tf_dataset(count, args.seed)

    clock = BatchClock()
    first = {name: [] for name in loaders}
    steady = {name: [] for name in loaders}  # seconds per batch

    def run(name, data, record=True):
        model.fit(
            data, epochs=epochs, shuffle=False, verbose=0, callbacks=[clock]
        )
        if not record:
            return
        for times in clock.epochs:
            begin, batch_starts, end = times[0], times[1:-1], times[-1]
            first[name].append(batch_starts[1] - begin)
            steady[name].append((end - batch_starts[1]) / (count - 1))

    for name, data in loaders.items():  # compile, start pools, warm up
        run(name, data, record=False)
    interleaved(
        {
            name: (lambda name=name, data=data: run(name, data))
            for name, data in loaders.items()
        },
        repeats,
        rotate=True,
    )
    for data in loaders.values():
        if isinstance(data, keras_cool.Sequence):
            data.close()

    median, best = medians(steady), minimums(steady)
    first_median = medians(first)
    width = max(len(name) for name in loaders)
    for name in loaders:
        print(
            f"  {name:>{width}}: steady median {1 / median[name]:.1f} "
            f"batches/s (best {1 / best[name]:.1f}), first batch of an "
            f"epoch median {1e3 * first_median[name]:.0f} ms ("
            + ", ".join(f"{1e3 * t:.0f}" for t in first[name])
            + " ms)"
        )
    cool = min(("cool_fresh", "cool_persistent"), key=median.get)
    others = [n for n in loaders if not n.startswith("cool")]
    fastest = min(others, key=median.get)
    print(f"load={os.getloadavg()[0]:.2f} after the rounds")
    print(
        ratio_line(
            "data_loading",
            steady,
            fastest,
            cool,
            extra=[
                f"{cool} {1 / median[cool]:.1f} batches/s",
                f"{fastest} {1 / median[fastest]:.1f} batches/s",
                "ratio = keras_cool batches/s over the fastest other",
            ],
        )
    )


if __name__ == "__main__":
    main()
