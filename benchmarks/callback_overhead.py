"""Cost of keras_cool's per-step callbacks inside `fit`, side by side.

Times `fit` on one small MLP (one warm-up round of every variant first, so
compilation is outside the timings; each variant keeps its callbacks
across rounds, as a script calling `fit` again would) with:
- no callback (baseline),
- `VariableScheduler(per="step")` whose value changes every step, written
  in `keras.ops` so it runs inside the train step ("scheduler_changing"),
  and the same schedule forced onto the Python path (`in_graph=False`: a
  state sync and a variable write each step on JAX),
- a schedule that is a Python constant (Python path, writes skipped after
  step 0),
- `LinearWarmup` over every step with a float learning rate (inside the
  train step).
Each variant runs `--repeats` times in alternation (rotated). The last line
is `callback_overhead: ratio=R (...)`, R = fastest run of the in-graph
changing `VariableScheduler` over the fastest baseline run (the
median-based ratio is printed beside it).

    python benchmarks/callback_overhead.py [--quick] [--steps N]
"""

import argparse
import os

import keras
import numpy as np
from _timing import interleaved
from _timing import medians
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
    parser.add_argument("--repeats", type=int, default=5)
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
        "baseline": [],
        "scheduler_changing": [
            VariableScheduler(scaled.scale, lambda s: 1e-3 * s, name=False)
        ],
        "scheduler_python": [
            VariableScheduler(
                scaled.scale, lambda s: 1e-3 * s, name=False, in_graph=False
            )
        ],
        "scheduler_constant": [
            VariableScheduler(scaled.scale, lambda s: 0.5, name=False)
        ],
        "warmup_float": [LinearWarmup(warmup_steps=100 * steps)],
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

    for callbacks in variants.values():  # compile outside the timings
        run(callbacks)
    times = interleaved(
        {
            name: (lambda callbacks=callbacks: run(callbacks))
            for name, callbacks in variants.items()
        },
        repeats,
        rotate=True,
    )
    best, median = minimums(times), medians(times)
    print(
        f"backend={keras.backend.backend()} steps={steps} batch={batch} "
        f"load={os.getloadavg()[0]:.2f}"
    )
    print_times(times)
    for name, seconds in best.items():
        per_step = 1e6 * (seconds - best["baseline"]) / steps
        print(
            f"{name}: fastest {seconds:.3f} s, min ratio="
            f"{seconds / best['baseline']:.3f}, median ratio="
            f"{median[name] / median['baseline']:.3f}, "
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
