"""Data loaders feeding `fit`, side by side: batches/s and first-batch time.

Two cases, each fed to `fit` of a tiny model through every loader a Keras
user can pick, with 2 workers:

- "small": one CPU-bound NumPy batch function (random crops, flips,
  brightness, noise and a blur of 64 images of 32x32x3: 8-20 ms on one
  core), batches of 64x16x16x3 float32 (196 KB);
- "image_uint8" and "image_float32": image-sized batches, 32x224x224x3
  (4.8 MB in uint8, 19 MB in float32), from a cheap function (a gather of
  cached images and a brightness shift), so moving the batch from the
  worker to the training process dominates.

The loaders:

- keras_cool `Sequence`, worker processes started per epoch ("fresh") and
  kept across epochs ("persistent"), default start method;
- `keras.utils.PyDataset(workers=2, use_multiprocessing=True)`;
- `grain.DataLoader(worker_count=2)` over a data source of whole batches,
  given to `fit` as Keras accepts it (when grain is installed; on
  TensorFlow an `IterDataset` with `mp_prefetch(num_workers=2)`, since
  Keras 3.15 cannot run a `DataLoader`'s workers there);
- torch `DataLoader(num_workers=2)` (when torch is installed);
- `tf.data` with `map(numpy_function, num_parallel_calls=2)` (when
  TensorFlow is installed).

Each loader runs one warm-up `fit`, then `fit(epochs=E, shuffle=False)` in
interleaved rounds (`shuffle=False`: `fit`'s default shuffles the batch
indices it asks a `PyDataset` for, so a keras_cool `Sequence` could not
prefetch ahead; shuffling belongs to the loader, `Sequence(shuffle=True)`
or `DataLoader(shuffle=True)`, and costs the same on this random data),
rotated, so no loader always runs first. A callback records the time of
every batch start: "first" is the time from the start of an epoch to the
start of its second batch (the first batch fetched and trained), "steady"
the batches per second after that. Each case prints
`<case>: ratio=R (...)` with R the steady batches/s of the faster
keras_cool loader over that of the fastest other loader, by median (the
min-based ratio beside it); R >= 1 means keras_cool is at least as fast.
The last line, `data_loading: ratio=R`, is the smallest median ratio.

`--transfer` measures instead what the training process spends per batch
to receive an array of each size from one worker process, through the
pipe (`KERAS_COOL_SHM_MIN_BYTES=off`) and through shared memory, with the
process CPU-time clock: the data behind the shared-memory threshold.

    python benchmarks/data_loading.py [--quick] [--cases small,image_uint8]
        [--batches N] [--image-batches N] [--repeats R] [--skip grain]
        [--transfer]
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
from _timing import print_times
from _timing import ratio_line

import keras_cool

BATCH, SIZE, PAD, CLASSES = 64, 32, 4, 10
IMAGE_BATCH, IMAGE_SIZE, CACHED = 32, 224, 8
CASES = ("small", "image_uint8", "image_float32")
WORKERS = 2


def augment(seed, index):
    """One small batch: (images after augmentation, downsampled; labels)."""
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


_CACHE = {}


def images(seed, index, dtype):
    """One image-sized batch: cached images gathered, brightness shifted."""
    key = (seed, dtype)
    if key not in _CACHE:  # once per process
        rng = np.random.default_rng(seed)
        shape = (CACHED, IMAGE_SIZE, IMAGE_SIZE, 3)
        _CACHE[key] = rng.integers(0, 250, shape, dtype=np.uint8)
    cached = _CACHE[key]
    rng = np.random.default_rng([seed, index])
    picks = rng.integers(0, CACHED, IMAGE_BATCH)
    x = cached[picks]  # a new (32, 224, 224, 3) uint8 array
    x += np.uint8(index % 5)
    if dtype == "float32":
        x = x.astype(np.float32)
    labels = rng.integers(0, CLASSES, size=(IMAGE_BATCH,)).astype("int32")
    return x, labels


def make_batch(case, seed, index):
    if case == "small":
        return augment(seed, index)
    return images(seed, index, case.split("_")[1])


def batch_spec(case):
    if case == "small":
        return (BATCH, SIZE // 2, SIZE // 2, 3), "float32", BATCH
    dtype = case.split("_")[1]
    return (IMAGE_BATCH, IMAGE_SIZE, IMAGE_SIZE, 3), dtype, IMAGE_BATCH


class CoolBatches(keras_cool.Sequence):
    def __init__(self, case, count, **kwargs):
        super().__init__(**kwargs)
        self.case = case
        self.count = count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return make_batch(self.case, self.seed, index)


class KerasBatches(keras.utils.PyDataset):
    def __init__(self, case, count, seed, **kwargs):
        super().__init__(**kwargs)
        self.case = case
        self.count = count
        self.seed = seed

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return make_batch(self.case, self.seed, index)


class GrainBatches:
    """A grain data source whose records are whole batches."""

    def __init__(self, case, count, seed):
        self.case = case
        self.count = count
        self.seed = seed

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return make_batch(self.case, self.seed, int(index))


def grain_loader(case, count, seed):
    import grain
    from absl import flags

    if not flags.FLAGS.is_parsed():  # grain reads absl flags (defaults)
        flags.FLAGS.mark_as_parsed()
    source = GrainBatches(case, count, seed)
    if keras.backend.backend() == "tensorflow":
        # Keras 3.15 rebuilds a DataLoader with a map that holds its lazy
        # `tf` module, which fails to unpickle in grain's workers
        # (RecursionError); an IterDataset with worker processes is mapped
        # in this process instead.
        dataset = grain.MapDataset.source(source).to_iter_dataset()
        options = grain.MultiprocessingOptions(num_workers=WORKERS)
        return dataset.mp_prefetch(options)

    sampler = grain.samplers.IndexSampler(
        num_records=count,
        shard_options=grain.sharding.NoSharding(),
        shuffle=False,
        num_epochs=1,
        seed=seed,
    )
    return grain.DataLoader(
        data_source=source,
        sampler=sampler,
        worker_count=WORKERS,
    )


def torch_loader(case, count, seed):
    import torch.utils.data

    class Batches(torch.utils.data.Dataset):
        def __len__(self):
            return count

        def __getitem__(self, index):
            return make_batch(case, seed, index)

    return torch.utils.data.DataLoader(
        Batches(), batch_size=None, num_workers=WORKERS, persistent_workers=True
    )


def tf_dataset(case, count, seed):
    import tensorflow as tf

    shape, dtype, batch = batch_spec(case)

    def load(index):
        return make_batch(case, seed, int(index))

    def mapped(index):
        x, y = tf.numpy_function(load, [index], [tf.as_dtype(dtype), tf.int32])
        x.set_shape(shape)
        y.set_shape((batch,))
        return x, y

    return (
        tf.data.Dataset.range(count)
        .map(mapped, num_parallel_calls=WORKERS, deterministic=True)
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


def tiny_model(case, seed):
    keras.utils.set_random_seed(seed)
    shape, dtype, _ = batch_spec(case)
    inputs = keras.Input(shape[1:], dtype=dtype)
    if case == "small":
        features = keras.layers.Flatten()(inputs)
    else:  # a cheap reduction of the large image
        scaled = keras.layers.Rescaling(1.0 / 255.0)(inputs)
        pooled = keras.layers.AveragePooling2D(8)(scaled)
        features = keras.layers.GlobalAveragePooling2D()(pooled)
    model = keras.Model(inputs, keras.layers.Dense(CLASSES)(features))
    model.compile(
        keras.optimizers.SGD(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def run_case(case, count, epochs, repeats, seed, skip=()):
    """Times every loader on `case`; returns (median ratio, its line)."""
    start = time.perf_counter()
    for i in range(3):
        make_batch(case, seed, i)
    per_batch = (time.perf_counter() - start) / 3
    print(
        f"case={case} batches={count} epochs={epochs} repeats={repeats} "
        f"workers={WORKERS} load={os.getloadavg()[0]:.2f}; one batch in "
        f"this process: {1e3 * per_batch:.1f} ms"
    )
    model = tiny_model(case, seed)
    loaders = {}
    for name, persistent in (("cool_fresh", False), ("cool_persistent", True)):
        loaders[name] = CoolBatches(
            case,
            count,
            seed=seed,
            workers=WORKERS,
            use_multiprocessing=True,
            persistent_workers=persistent,
        )
    loaders["pydataset"] = KerasBatches(
        case, count, seed, workers=WORKERS, use_multiprocessing=True
    )
    makers = {
        "grain": ("grain", grain_loader),
        "torch_dataloader": ("torch", torch_loader),
        "tf_data": ("tensorflow", tf_dataset),
    }
    for name, (module, make) in makers.items():
        if name not in skip and importlib.util.find_spec(module) is not None:
            loaders[name] = make(case, count, seed)

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
    line = ratio_line(
        case,
        steady,
        fastest,
        cool,
        extra=[
            f"{cool} {1 / median[cool]:.1f} batches/s",
            f"{fastest} {1 / median[fastest]:.1f} batches/s",
            "ratio = keras_cool batches/s over the fastest other",
        ],
    )
    print(line, flush=True)
    return median[fastest] / median[cool], line


class Fixed(keras_cool.Sequence):
    """The same cached array every batch: only the transfer costs."""

    def __init__(self, nbytes, count, **kwargs):
        super().__init__(**kwargs)
        self.nbytes = nbytes
        self.count = count
        self.array = None

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        if self.array is None:
            self.array = np.ones(self.nbytes // 4, np.float32)
        return self.array


def transfer(repeats, quick):
    """Main-process time per batch: pipe vs shared memory, by size."""
    sizes = [16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 19 << 20]
    if quick:
        sizes = [256 << 10, 4 << 20]
    print(f"transfer: load={os.getloadavg()[0]:.2f}, 1 worker process")
    ratios = {}
    for nbytes in sizes:
        count = 8 if quick else max(16, min(400, (400 << 20) // nbytes // 4))
        runners, wall, made = {}, {"pipe": [], "shm": []}, []
        for way, env in (("pipe", "off"), ("shm", "0")):
            os.environ["KERAS_COOL_SHM_MIN_BYTES"] = env
            data = Fixed(nbytes, count, workers=1, use_multiprocessing=True)
            data.persistent_workers = True
            made.append(data)
            for _ in data:  # start the worker, make the blocks
                pass

            def one_pass(data=data, way=way):
                start = time.perf_counter()
                for _ in data:
                    pass
                wall[way].append((time.perf_counter() - start) / count)

            runners[way] = one_pass
        cpu = interleaved(
            runners, repeats, rotate=True, per=count, clock=time.process_time
        )
        os.environ.pop("KERAS_COOL_SHM_MIN_BYTES")
        for data in made:
            data.close()
        print(f"  {nbytes >> 10} KB per batch, main-process CPU ms:")
        print_times(cpu, scale=1e3, unit="ms")
        print("   wall ms per batch:")
        print_times(wall, scale=1e3, unit="ms")
        ratios[nbytes] = (
            medians(cpu)["pipe"] / medians(cpu)["shm"],
            medians(wall)["pipe"] / medians(wall)["shm"],
        )
    print(f"load={os.getloadavg()[0]:.2f} after the rounds")
    print(
        ratio_line(
            "data_loading_transfer",
            cpu,
            "pipe",
            "shm",
            extra=[
                f"{n >> 10} KB pipe/shm cpu {c:.2f} wall {w:.2f}"
                for n, (c, w) in ratios.items()
            ]
            + [f"ratio at {max(sizes) >> 10} KB = pipe CPU time over shm"],
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--cases",
        default=None,
        help="comma-separated subset of small, image_uint8, image_float32 "
        "(default: all three; with --quick, image_uint8)",
    )
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--image-batches", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--transfer", action="store_true")
    parser.add_argument(
        "--skip", default="", help="loaders to leave out, e.g. grain"
    )
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    print(f"backend={keras.backend.backend()}")
    if args.transfer:
        transfer(repeats, args.quick)
        return
    epochs = args.epochs or (1 if args.quick else 2)
    if args.cases is None:
        args.cases = "image_uint8" if args.quick else ",".join(CASES)
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"--cases: unknown {sorted(unknown)}; from {CASES}")
    results = {}
    for case in cases:
        if case == "small":
            count = args.batches or (6 if args.quick else 120)
        else:
            count = args.image_batches or (4 if args.quick else 30)
        results[case] = run_case(
            case, count, epochs, repeats, args.seed, args.skip.split(",")
        )
    weakest = min(results, key=lambda c: results[c][0])
    print(
        f"data_loading: ratio={results[weakest][0]:.3f} ("
        + ", ".join(f"{c} {r:.3f}" for c, (r, _) in results.items())
        + f"; the smallest median ratio, {weakest})"
    )


if __name__ == "__main__":
    main()
