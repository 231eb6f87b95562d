"""Cost of keras_cool's per-step callbacks inside `fit`, side by side.

Times `fit` on one small MLP (one warm-up round of every variant first, so
compilation is outside the timings) with:
- no callback (baseline),
- `VariableScheduler(per="step")` whose value changes every step (a state
  sync and a variable write each step on JAX),
- the same with a schedule that is constant (writes skipped after step 0),
- `LinearWarmup` over every step with a float learning rate.
Each variant runs `--repeats` times in alternation; the minimum counts.
The last line is `callback_overhead: ratio=R (...)`, R = fastest run of the
changing per-step `VariableScheduler` over the fastest baseline run.

    python benchmarks/callback_overhead.py [--quick] [--steps N]
"""

import argparse

import keras
import numpy as np
from _timing import interleaved
from _timing import minimums
from _timing import print_times
from _timing import ratio_line

from keras_cool.callbacks import LinearWarmup
from keras_cool.callbacks import VariableScheduler


class ScaledLoss(keras.layers.Layer):
    """Identity that adds `scale * mean(x**2)` as a loss."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scale = keras.Variable(
            0.0, trainable=False, dtype="float32", name="scale"
        )

    def call(self, x):
        self.add_loss(self.scale * keras.ops.mean(keras.ops.square(x)))
        return x


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    steps = 5 if args.quick else args.steps
    width = 16 if args.quick else 256
    repeats = 1 if args.quick else args.repeats
    keras.utils.set_random_seed(args.seed)

    batch = 32
    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(steps * batch, 64)).astype("float32")
    y = rng.normal(size=(steps * batch, 10)).astype("float32")
    scaled = ScaledLoss()
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(width, activation="relu"),
            scaled,
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")

    variants = {
        "baseline": lambda: [],
        "scheduler_changing": lambda: [
            VariableScheduler(scaled.scale, lambda s: 1e-3 * s, name=False)
        ],
        "scheduler_constant": lambda: [
            VariableScheduler(scaled.scale, lambda s: 0.5, name=False)
        ],
        "warmup_float": lambda: [LinearWarmup(warmup_steps=10 * steps)],
    }

    def run(callbacks):
        model.fit(
            x,
            y,
            batch_size=batch,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        )

    for make in variants.values():  # compile outside the timings
        run(make())
    times = interleaved(
        {
            name: (lambda make=make: run(make()))
            for name, make in variants.items()
        },
        repeats,
    )
    best = minimums(times)
    base = best["baseline"]
    print(f"backend={keras.backend.backend()} steps={steps} batch={batch}")
    print_times(times)
    for name, seconds in best.items():
        per_step = 1e6 * (seconds - base) / steps
        print(
            f"{name}: fastest {seconds:.3f} s, ratio={seconds / base:.3f}, "
            f"overhead={per_step:+.0f} us/step"
        )
    print(
        ratio_line(
            "callback_overhead",
            times,
            "scheduler_changing",
            "baseline",
            by="min",
        )
    )


if __name__ == "__main__":
    main()
