"""Batches per second of CPU-bound batches: 2 worker processes vs 1.

Each batch does single-threaded NumPy work (FFT blurs and sorts of random
images), then returns small features. `model.predict` on a one-layer model
consumes the batches, so both data sets go through Keras's real pipeline:

- keras_cool.Sequence, workers=1 and workers=2, use_multiprocessing=True
  (default start method, "forkserver"; "fork" with --quick);
- keras.utils.PyDataset with the same settings (Keras's enqueuer, "fork").

Each data set is read once to warm up, then passes are timed in
alternating rounds. The last line is `sequence_throughput: ratio=R (...)`
with R the speedup of 2 keras_cool processes over 1 (median seconds per
batch of 1 process over those of 2).

    python benchmarks/sequence_throughput.py [--quick] [--batches N]
        [--repeats R]
"""

import argparse
import time

import keras
import numpy as np
from _timing import interleaved
from _timing import medians
from _timing import minimums
from _timing import print_times
from _timing import ratio_line

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


class CpuBatches:
    """`count` batches of `cpu_work`; mixed into both data set classes."""

    def __init__(self, count, size, rounds, **kwargs):
        super().__init__(**kwargs)
        self.count = count
        self.size = size
        self.rounds = rounds

    def __len__(self):
        return self.count


class CoolBatches(CpuBatches, keras_cool.Sequence):
    def __getitem__(self, index):
        return (cpu_work(self.rng, self.size, self.rounds),)


class KerasBatches(CpuBatches, keras.utils.PyDataset):
    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        return (cpu_work(rng, self.size, self.rounds),)


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
    # shared machine hits them alike.
    times = interleaved(
        {
            name: (lambda data=data: model.predict(data, verbose=0))
            for name, data in datasets.items()
        },
        repeats,
        per=count,
    )
    for data in datasets.values():
        if isinstance(data, keras_cool.Sequence):
            data.close()
    print_times(times, unit="s per batch")
    for label, stat in (("median", medians(times)), ("min", minimums(times))):
        print(
            f"{label}: "
            + ", ".join(f"{k} {1 / v:.1f} batches/s" for k, v in stat.items())
            + "; keras_cool 2 processes vs PyDataset 2 processes: "
            f"{stat['keras_2'] / stat['cool_2']:.2f}x"
        )
    median = medians(times)
    print(
        ratio_line(
            "sequence_throughput",
            times,
            "cool_1",
            "cool_2",
            extra=[
                f"PyDataset 1 process {median['keras_1']:.4f} s",
                f"2 processes {median['keras_2']:.4f} s per batch",
            ],
        )
    )


if __name__ == "__main__":
    main()
