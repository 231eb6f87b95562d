"""Batches per second of CPU-bound batches: 2 worker processes vs 1.

Each batch does single-threaded NumPy work (FFT blurs and sorts of random
images), then returns small features. `model.predict` on a one-layer model
consumes the batches, so both data sets go through Keras's real pipeline:

- keras_cool.Sequence, workers=1 and workers=2, use_multiprocessing=True
  (default start method, "forkserver"; "fork" with --quick);
- keras.utils.PyDataset with the same settings (Keras's enqueuer, "fork").

Each data set is read once to warm up (keras_cool keeps its workers with
`persistent_workers=True`; Keras forks a new pool for every pass), then
passes are timed in alternating rounds and the median is reported. The last
line is
`sequence_throughput: ratio=R (...)` with R the speedup of 2 keras_cool
processes over 1.

    python benchmarks/sequence_throughput.py [--quick] [--batches N]
        [--repeats R]
"""

import argparse
import time

import keras
import numpy as np

import keras_cool


def cpu_work(rng, size, rounds):
    """Single-threaded NumPy work for one batch; returns (16, 8) features."""
    images = rng.random((16, size, size), dtype=np.float32)
    kernel = np.fft.rfft2(np.outer(np.hanning(size), np.hanning(size)))
    for _ in range(rounds):
        images = np.fft.irfft2(np.fft.rfft2(images) * kernel, s=(size, size))
        images = np.sort(images, axis=-1)
        images = images / (images.std() + 1e-6)
    return images[:, :8, 0].astype("float32")


class CoolBatches(keras_cool.Sequence):
    def __init__(self, count, size, rounds, **kwargs):
        super().__init__(**kwargs)
        self.count = count
        self.size = size
        self.rounds = rounds

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return (cpu_work(self.rng, self.size, self.rounds),)


class KerasBatches(keras.utils.PyDataset):
    def __init__(self, count, size, rounds, **kwargs):
        super().__init__(**kwargs)
        self.count = count
        self.size = size
        self.rounds = rounds

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        return (cpu_work(rng, self.size, self.rounds),)


def timed_pass(dataset, model):
    """Seconds per batch of one `predict` pass."""
    start = time.perf_counter()
    model.predict(dataset, verbose=0)
    return (time.perf_counter() - start) / len(dataset)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batches", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    count = args.batches or (6 if args.quick else 60)
    repeats = args.repeats or (1 if args.quick else 3)
    size, rounds = (32, 2) if args.quick else (128, 6)

    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    options = {"count": count, "size": size, "rounds": rounds}
    start = time.perf_counter()
    cpu_work(np.random.default_rng(0), size, rounds)
    print(f"one batch in this process: {time.perf_counter() - start:.4f} s")

    datasets = {}
    for name, cls, workers in [
        ("cool_1", CoolBatches, 1),
        ("cool_2", CoolBatches, 2),
        ("keras_1", KerasBatches, 1),
        ("keras_2", KerasBatches, 2),
    ]:
        extra = {}
        if cls is CoolBatches:
            extra = {"seed": args.seed, "persistent_workers": True}
            if args.quick:  # skip starting a fork server in a smoke run
                extra["start_method"] = "fork"
        datasets[name] = cls(
            workers=workers, use_multiprocessing=True, **options, **extra
        )
        model.predict(datasets[name], verbose=0)  # warm up, start workers
    # Rounds alternate the four set-ups, so load from other programs on a
    # shared machine hits them alike; the median of each is reported.
    times = {name: [] for name in datasets}
    for _ in range(repeats):
        for name, data in datasets.items():
            times[name].append(timed_pass(data, model))
    for data in datasets.values():
        if isinstance(data, keras_cool.Sequence):
            data.close()
    results = {name: float(np.median(t)) for name, t in times.items()}
    for name, per_batch in results.items():
        print(
            f"{name}: {1 / per_batch:.1f} batches/s ({per_batch:.4f} s per "
            f"batch; passes: {', '.join(f'{t:.4f}' for t in times[name])})"
        )
    ratio = results["cool_1"] / results["cool_2"]
    versus = results["keras_2"] / results["cool_2"]
    print(f"keras_cool 2 processes vs PyDataset 2 processes: {versus:.2f}x")
    print(
        f"sequence_throughput: ratio={ratio:.2f} "
        f"(A=1 process {results['cool_1']:.4f} s, "
        f"B=2 processes {results['cool_2']:.4f} s per batch; "
        f"PyDataset 1 process {results['keras_1']:.4f} s, "
        f"2 processes {results['keras_2']:.4f} s per batch)"
    )


if __name__ == "__main__":
    main()
