"""Step time of `fit` with keras_cool's EMA vs no EMA vs Keras's `use_ema`.

Three identical MLPs (about 0.93M parameters: 784-512-512-512-10) are
trained with Adam on random data, in one process, on the current backend:

- none: no EMA;
- ema: `keras_cool.callbacks.ExponentialMovingAverage(decay=0.999)`;
- keras_use_ema: `keras.optimizers.Adam(use_ema=True, ema_momentum=0.999)`.

Each run builds a fresh model (same seed) and runs one `fit` of
1 + `--timed-epochs` short epochs; the first epoch (compilation) is not
timed, each later epoch gives one per-step sample. The variants are
interleaved (A, B, C, A, B, C, ...).

The last line is
`ema_overhead: ratio=R (ema=... s, none=... s, ...)`: the times are median
seconds per step, and R is the median over samples of ema_i / none_i,
where sample i of each variant comes from the same repeat and epoch number
(taken seconds apart).

    python benchmarks/ema_overhead.py [--quick] [--repeats 5]
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

from keras_cool import ExponentialMovingAverage


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        float(logs["loss"])  # the epoch's work is done
        self.times.append(time.perf_counter() - self.start)


def make_model(width, depth, inputs, use_ema, seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((inputs,))]
        + [keras.layers.Dense(width, activation="relu") for _ in range(depth)]
        + [keras.layers.Dense(10)]
    )
    optimizer = keras.optimizers.Adam(1e-4, use_ema=use_ema, ema_momentum=0.999)
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timed-epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="per epoch")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=3, help="hidden layers")
    parser.add_argument("--inputs", type=int, default=784)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    width, depth, inputs = args.width, args.depth, args.inputs
    if args.quick:
        width, depth, inputs = 32, 2, 16
        args.repeats, args.timed_epochs = 1, 1
        args.steps, args.batch_size = 4, 16

    rng = np.random.default_rng(args.seed)
    n = args.steps * args.batch_size
    x = rng.standard_normal((n, inputs)).astype("float32")
    y = rng.integers(0, 10, size=(n,))

    def variant(name):
        model = make_model(
            width, depth, inputs, name == "keras_use_ema", args.seed
        )
        ema = ExponentialMovingAverage(decay=0.999) if name == "ema" else None
        return model, ema

    names = ["none", "ema", "keras_use_ema"]
    params = variant("none")[0].count_params()
    print(
        f"backend={keras.backend.backend()} params={params} "
        f"batch={args.batch_size} steps/epoch={args.steps} "
        f"repeats={args.repeats}x{args.timed_epochs} epochs"
    )

    def runner(name):
        def run():
            # A fresh model per run also sidesteps a Keras 3.15.1 bug (see
            # the README's Performance section).
            model, ema = variant(name)
            timer = EpochTimer()
            callbacks = [timer] if ema is None else [ema, timer]
            model.fit(
                x,
                y,
                batch_size=args.batch_size,
                epochs=1 + args.timed_epochs,
                shuffle=False,
                verbose=0,
                callbacks=callbacks,
            )
            return timer.times[1:]

        return run

    per_step = interleaved(
        {name: runner(name) for name in names},
        args.repeats,
        per=args.steps,
        self_timed=True,
    )
    print_times(per_step, scale=1e3, unit="ms/step")
    median, best = medians(per_step), minimums(per_step)
    samples = {k: np.array(v) for k, v in per_step.items()}

    def paired(a, b):
        # Samples i of a and b were taken back to back: their ratio cancels
        # most of the machine's slow drift.
        return float(np.median(samples[a] / samples[b]))

    for label, stat in (("median", median), ("min", best)):
        print(
            f"{label} times: ema/none={stat['ema'] / stat['none']:.3f} "
            f"ema/keras_use_ema={stat['ema'] / stat['keras_use_ema']:.3f} "
            f"keras_use_ema/none={stat['keras_use_ema'] / stat['none']:.3f}"
        )
    print(
        f"paired: ema/none={paired('ema', 'none'):.3f} "
        f"ema/keras_use_ema={paired('ema', 'keras_use_ema'):.3f} "
        f"keras_use_ema/none={paired('keras_use_ema', 'none'):.3f}"
    )
    print(
        "ema vs keras use_ema (paired median): "
        f"ratio={paired('ema', 'keras_use_ema'):.3f}"
    )
    print(
        ratio_line(
            "ema_overhead",
            per_step,
            "ema",
            "none",
            ratio=paired("ema", "none"),
            extra=[f"keras_use_ema={median['keras_use_ema']:.3g} s"],
        )
    )


if __name__ == "__main__":
    main()
