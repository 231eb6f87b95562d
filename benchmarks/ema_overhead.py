"""Step time of `fit` with keras_cool's EMA vs no EMA vs Keras's `use_ema`.

Four models, one after the other ("cases"): a small MLP (about 3e4
parameters), a small convnet (about 2e4 parameters, 16x16x3 inputs), a
large MLP (about 1.33M parameters: 784-640-640-640-10, batch 256) and a
large convnet (about 1.1M parameters: five 3x3 convolutions of 32-256
channels on 32x32x3 inputs, then 512-10 dense, batch 32). For each case,
three identical models are trained with Adam on random data, in one
process, on the current backend:

- none: no EMA;
- ema: `keras_cool.callbacks.ExponentialMovingAverage(decay=0.999)`;
- two_profiles: `ExponentialMovingAverage(sigma_rel=(0.05, 0.1))`, two
  power-function profiles in one update;
- keras_use_ema: `keras.optimizers.Adam(use_ema=True, ema_momentum=0.999)`.

"none", "ema" and "two_profiles" share one model (fit after fit);
`use_ema` builds a fresh one (same seed) per run. Each run is one `fit` of
1 + `--timed-epochs` short epochs; the first epoch (compilation) is not
timed, each later epoch gives one per-step sample, from its first batch to
its end (the data iterator's start before the first batch is not a step).
The variants are interleaved (A, B, C, A, B, C, ...).

Each case prints median-, min- and paired ratios, `ema` beside
`keras_use_ema`, and a 95 % bootstrap interval for each paired ratio (an
interval that contains 1: the two are not told apart).

Then the fixed cost per step alone ("update alone"): compiled optimizer
steps with fixed gradients, no forward or backward pass and no data, as
`fit` compiles them: Adam; Adam then the callback's update (one EMA, and
two profiles); and `Adam(use_ema=True)`, interleaved,
`--update-repeats` samples of `--update-steps` steps (200 samples: 30
did not resolve the small models' 10-40 us differences on a noisy 2-core
VM). The EMA's cost per step is
each variant's time minus Adam's, and
(adam+ema)/keras_use_ema <= 1 means the callback costs at most what
`use_ema` costs. On TensorFlow a fourth variant, "one_pass", times the
floor of an EMA update that runs as its own pass without XLA: one pass
that reads each weight and shadow and writes the shadow (the callback's
kernel makes two). The update
alone also times one power profile (`sigma_rel=0.05`) and the two profiles,
and gives the two profiles' cost over one profile's and over the decay
EMA's, paired: the median over samples of (two_profiles_i - adam_i) /
(one_i - adam_i) (at most 2: a second profile costs no more than a second
EMA). The last lines are one
`two_profiles: ratio=R (...)` per case with that ratio, then one
`ema_overhead: ratio=R (ema=... s, none=... s, ...)` per case (the large
convnet's last): the times are median seconds per step, and R is the
median over samples of ema_i / none_i, where sample i of each variant
comes from the same repeat and epoch number (taken seconds apart).
`--clock cpu` times with this process's CPU time (all threads) instead of
the wall clock: steadier on a machine shared with other jobs.

    python benchmarks/ema_overhead.py [--quick] [--cases mlp] [--clock cpu]
"""

import argparse
import os
import time
import types
import typing

import keras
import numpy as np
from _timing import interleaved
from _timing import medians
from _timing import minimums
from _timing import paired_ratio
from _timing import print_times
from _timing import ratio_line

from keras_cool import ExponentialMovingAverage
from keras_cool.callbacks._ema_profiles import Plan
from keras_cool.callbacks._ema_profiles import profiles_of
from keras_cool.callbacks._ema_update import build_update

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
TWO_PROFILES = (0.05, 0.1)


class Case(typing.NamedTuple):
    layers: typing.Callable  # () -> the model's layers
    shape: tuple  # one input's shape
    steps: int  # per epoch, in `fit`
    update_steps: int  # per sample, in the update-alone timing
    batch: int = 256
    repeats: int = 5  # runs of `fit` per variant


class EpochTimer(keras.callbacks.Callback):
    """Seconds from each epoch's first batch to its end (the epoch-end
    callbacks included). The start of the data iterator before the first
    batch is left out: on TensorFlow it took 10 ms or 200-300 ms at random,
    which made the per-step times bimodal. A batch-begin hook keeps async
    dispatch on JAX (only batch-end hooks turn it off)."""

    def __init__(self, clock=time.perf_counter):
        super().__init__()
        self.times = []
        self.clock = clock

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 0:
            self.start = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        float(logs["loss"])  # the epoch's work is done
        self.times.append(self.clock() - self.start)


def conv(filters):
    return keras.layers.Conv2D(filters, 3, padding="same", activation="relu")


def layers_of(case, width, depth, inputs):
    pool = keras.layers.MaxPooling2D
    if case == "convnet":
        return [
            keras.Input((16, 16, 3)),
            *(conv(16), pool(), conv(32), pool(), conv(32)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    if case == "convnet_large":  # `width` scales the channels (64: 1.1M)
        return [
            keras.Input((inputs, inputs, 3)),
            *(conv(width // 2), pool(), conv(width), pool()),
            *(conv(2 * width), conv(4 * width), conv(4 * width)),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(8 * width, activation="relu"),
            keras.layers.Dense(10),
        ]
    return (
        [keras.Input((inputs,))]
        + [keras.layers.Dense(width, activation="relu") for _ in range(depth)]
        + [keras.layers.Dense(10)]
    )


def make_model(layers, use_ema, args):
    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential(layers())
    optimizer = keras.optimizers.Adam(1e-4, use_ema=use_ema, ema_momentum=0.999)
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True if args.jit_compile else "auto",
    )
    return model


# The update-alone variants beside Adam, and how their costs are printed.
COST_LABELS = {
    "adam+ema": "callback",
    "adam+one_profile": "one_profile",
    "adam+two_profiles": "two_profiles",
    "keras_use_ema": "keras_use_ema",
    "adam+one_pass": "one_pass",  # TensorFlow only
}


def one_pass(variables):
    """TensorFlow: the least memory traffic an EMA update that runs as its
    own pass has: one pass that reads each weight and its shadow and writes
    the shadow (`shadow -= 0 * weight`, TensorFlow's one-pass
    `ResourceApplyGradientDescent`), on shadows of its own."""
    import tensorflow as tf

    shadows = [keras.Variable(v.value, trainable=False) for v in variables]

    def update_in_place():
        for shadow, weight in zip(shadows, variables):
            tf.raw_ops.ResourceApplyGradientDescent(
                var=shadow.value.handle, alpha=0.0, delta=weight.value
            )

    # `compiled_step` calls `update_in_place()`, as it calls the callback's.
    return types.SimpleNamespace(update_in_place=update_in_place)


def ema_member(model, sigma_rel=None):
    """The EMA's train-step member (`_ema_update.EmaUpdate`), built as the
    callback builds it at `on_train_begin`: decay 0.999, or the power
    profiles `sigma_rel`, all in one update."""
    plan = Plan(profiles_of(0.999, sigma_rel))
    member = build_update(model, "average", plan)
    member.prepare()
    return member


def compiled_step(model, optimizer, ema, grads):
    """One optimizer step with fixed `grads`, then `ema`'s update if given,
    compiled as `fit` compiles it on this backend. Returns `(run, wait)`:
    `run()` takes one step, `wait()` blocks until the steps are done."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        # Copies: each step donates its state, and two runners may share
        # one model.
        state = [
            [keras.ops.copy(v.value) for v in model.trainable_variables],
            [keras.ops.copy(v.value) for v in optimizer.variables],
            ema.hook_state() if ema is not None else [],
        ]

        def step(state):
            trainable, variables, shadows = state
            trainable, variables = optimizer.stateless_apply(
                variables, grads, trainable
            )
            if ema is not None:
                shadows = ema.advance(shadows, trainable)
            return [trainable, variables, shadows]

        step = jax.jit(step, donate_argnums=0)

        def run():
            state[:] = step(state)

        return run, lambda: jax.block_until_ready(state)

    def run():
        optimizer.apply(grads, model.trainable_variables)
        if ema is not None:
            ema.update_in_place()

    if backend == "tensorflow":
        import tensorflow as tf

        run = tf.function(run, autograph=False, jit_compile=model.jit_compile)
    return run, lambda: None  # TensorFlow and torch return when done


def time_updates(title, case, args):
    """The fixed cost per step alone: compiled optimizer steps with fixed
    gradients (no forward or backward pass, no data), side by side. Returns
    each EMA variant's median cost per step."""
    layers, steps = case.layers, args.update_steps or case.update_steps
    models = {
        "adam": make_model(layers, False, args),
        "keras_use_ema": make_model(layers, True, args),
    }
    updates = {  # each after Adam, on the "adam" model
        "adam+ema": ema_member(models["adam"]),
        "adam+one_profile": ema_member(models["adam"], TWO_PROFILES[:1]),
        "adam+two_profiles": ema_member(models["adam"], TWO_PROFILES),
    }
    if keras.backend.backend() == "tensorflow":
        updates["adam+one_pass"] = one_pass(models["adam"].trainable_variables)
    models.update(dict.fromkeys(updates, models["adam"]))
    rng = np.random.default_rng(args.seed)
    grads = [
        keras.ops.convert_to_tensor(
            0.01 * rng.standard_normal(v.shape).astype("float32")
        )
        for v in models["adam"].trainable_variables
    ]
    runners = {}
    for name, model in models.items():
        model.optimizer.build(model.trainable_variables)
        run, wait = compiled_step(
            model, model.optimizer, updates.get(name), grads
        )

        def steps_of(run=run, wait=wait):
            for _ in range(steps):
                run()
            wait()

        steps_of()  # compile
        runners[name] = steps_of
    times = interleaved(
        runners,
        args.update_repeats,
        rotate=True,
        per=steps,
        clock=CLOCKS[args.clock],
    )
    print(f"  {title} update alone ({steps} steps per sample):")
    print_times(times, scale=1e6, unit="us/step")
    median, best = medians(times), minimums(times)

    def costs_of(stat):  # seconds per step over Adam's, by variant
        return {k: stat[k] - stat["adam"] for k in COST_LABELS if k in stat}

    for label, stat in (("median", median), ("min", best)):
        costs = " ".join(
            f"{COST_LABELS[k]}={1e6 * cost:.1f} us"
            for k, cost in costs_of(stat).items()
        )
        print(
            f"  {title} update alone, {label}: EMA cost per step {costs}; "
            "(adam+ema)/keras_use_ema="
            f"{stat['adam+ema'] / stat['keras_use_ema']:.3f}"
        )
    r, low, high = paired_ratio(times["adam+ema"], times["keras_use_ema"])
    print(
        f"  {title} update alone, paired, 95 % interval: "
        f"(adam+ema)/keras_use_ema={r:.3f} [{low:.3f}, {high:.3f}]"
    )
    adam = np.array(times["adam"])
    two = np.array(times["adam+two_profiles"]) - adam
    ratios = {}
    for one in ("adam+one_profile", "adam+ema"):
        ratios[one] = paired_ratio(two, np.array(times[one]) - adam)
        r, low, high = ratios[one]
        print(
            f"  {title} update alone, paired, 95 % interval: two profiles' "
            f"cost / {COST_LABELS[one]}'s = {r:.3f} [{low:.3f}, {high:.3f}]"
        )
    return costs_of(median), ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny run")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="runs of `fit` per variant (default: 5, 5, 15 and 15 for the "
        "four cases; on the large models, 15 samples left the ratios "
        "+-4 %% apart between runs, against EMA costs under 4 %%)",
    )
    parser.add_argument("--timed-epochs", type=int, default=3)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="per epoch (default: 200, 100, 20 and 5 for the four cases, "
        "so that one epoch takes about 0.1-0.3 s on a quiet core)",
    )
    parser.add_argument(
        "--update-steps",
        type=int,
        default=None,
        help="optimizer steps per sample of the update-alone timing "
        "(default: 100, 100, 10 and 10 for the four cases)",
    )
    parser.add_argument("--update-repeats", type=int, default=200)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="default: 256, 256, 256 and 32 for the four cases",
    )
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--depth", type=int, default=3, help="hidden layers")
    parser.add_argument("--inputs", type=int, default=784)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: time.perf_counter; cpu: time.process_time (this "
        "process's CPU time, all threads; steadier on a shared machine)",
    )
    parser.add_argument(
        "--jit-compile",
        action="store_true",
        help="TensorFlow: compile the steps with XLA (on a CPU Keras "
        "compiles them without it by default); JAX always uses XLA",
    )
    parser.add_argument(
        "--cases",
        default=None,
        help="comma-separated subset of mlp, convnet, mlp_large, "
        "convnet_large (default: all four; with --quick, mlp and a tiny "
        "convnet_large)",
    )
    args = parser.parse_args()
    if args.jit_compile and keras.backend.backend() != "tensorflow":
        parser.error("--jit-compile: for the TensorFlow backend only")
    cases = {
        "mlp": Case(lambda: layers_of("mlp", 128, 2, 64), (64,), 200, 100),
        "convnet": Case(
            lambda: layers_of("convnet", 0, 0, 0), (16, 16, 3), 100, 100
        ),
        "mlp_large": Case(
            lambda: layers_of("mlp", args.width, args.depth, args.inputs),
            (args.inputs,),
            20,
            10,
            repeats=15,
        ),
        "convnet_large": Case(
            lambda: layers_of("convnet_large", 64, 0, 32),
            (32, 32, 3),
            5,
            10,
            batch=32,
            repeats=15,
        ),
    }
    if args.quick:
        cases["mlp_large"] = Case(
            lambda: layers_of("mlp", 32, 2, 16), (16,), 4, 2
        )
        cases["convnet_large"] = Case(
            lambda: layers_of("convnet_large", 4, 0, 8), (8, 8, 3), 4, 2
        )
        args.repeats, args.timed_epochs = 1, 1
        args.steps, args.batch_size = 4, 16
        args.update_steps, args.update_repeats = 2, 2
    print(
        f"backend={keras.backend.backend()} "
        f"batch={args.batch_size or '256/256/256/32'} "
        f"steps/epoch={args.steps or '200/100/20/5'} "
        f"repeats={args.repeats or '5/5/15/15'}x{args.timed_epochs} epochs "
        f"jit_compile={args.jit_compile} clock={args.clock} "
        f"load={os.getloadavg()[0]:.2f}"
    )
    if args.cases is None:
        args.cases = "mlp,convnet_large" if args.quick else ",".join(cases)
    unknown = set(args.cases.split(",")) - set(cases)
    if unknown:
        parser.error(f"--cases: unknown {sorted(unknown)}; use {list(cases)}")
    lines, two_lines = [], []
    for name in args.cases.split(","):
        case = cases[name]
        line, step = run_case(name, case, args)
        lines.append(line)
        cost, ratios = time_updates(name, case, args)
        r, low, high = ratios["adam+one_profile"]
        r_ema, low_ema, high_ema = ratios["adam+ema"]
        two_lines.append(
            f"two_profiles: ratio={r:.3f} (two power profiles' update cost "
            f"over one's, paired, 95 % interval [{low:.3f}, {high:.3f}]; "
            f"over one decay EMA's {r_ema:.3f} [{low_ema:.3f}, "
            f"{high_ema:.3f}]; two={1e6 * cost['adam+two_profiles']:.1f} "
            f"us, one={1e6 * cost['adam+one_profile']:.1f} us, "
            f"decay EMA={1e6 * cost['adam+ema']:.1f} us, case={name})"
        )
        # The update alone resolves a cost that `fit`'s sample spread hides.
        shares = ", ".join(
            f"{COST_LABELS[k]} {100 * cost[k] / step:.2f} %" for k in cost
        )
        print(
            f"  {name}: EMA cost per step (update alone, median) over the "
            f"fit step (none, median {1e3 * step:.3g} ms): {shares}"
        )
    print(f"load={os.getloadavg()[0]:.2f} at the end")
    print("\n".join(two_lines + lines))


def run_case(title, case, args):
    """Times the three variants on one model; returns its ratio line and
    the median step time without EMA."""
    layers, steps = case.layers, args.steps or case.steps
    batch, repeats = args.batch_size or case.batch, args.repeats or case.repeats
    rng = np.random.default_rng(args.seed)
    n = steps * batch
    x = rng.standard_normal((n, *case.shape)).astype("float32")
    y = rng.integers(0, 10, size=(n,))

    # "none" and "ema" train one shared model, fit after fit: separate
    # model instances of the same shape differ in speed by up to 30 % on
    # torch (memory placement), which would swamp a 1 % cost. Keras's
    # `use_ema` needs its own optimizer, so it gets a fresh model per run.
    shared = make_model(layers, False, args)

    def variant(name):
        if name == "keras_use_ema":
            return make_model(layers, True, args), None
        ema = None
        if name == "ema":
            ema = ExponentialMovingAverage(decay=0.999)
        elif name == "two_profiles":
            ema = ExponentialMovingAverage(sigma_rel=TWO_PROFILES)
        return shared, ema

    names = ["none", "ema", "two_profiles", "keras_use_ema"]
    params = shared.count_params()
    print(
        f"case={title} params={params} steps/epoch={steps} batch={batch} "
        f"repeats={repeats}"
    )

    def runner(name):
        def run():
            # A fresh `use_ema` model per run also sidesteps a Keras 3.15.1
            # bug (see the README's Performance section).
            model, ema = variant(name)
            timer = EpochTimer(CLOCKS[args.clock])
            callbacks = [timer] if ema is None else [ema, timer]
            model.fit(
                x,
                y,
                batch_size=batch,
                epochs=1 + args.timed_epochs,
                shuffle=False,
                verbose=0,
                callbacks=callbacks,
            )
            return timer.times[1:]

        return run

    per_step = interleaved(
        {name: runner(name) for name in names},
        repeats,
        rotate=True,
        per=steps,
        self_timed=True,
    )  # `EpochTimer` times each epoch on `--clock`
    print_times(per_step, scale=1e3, unit="ms/step")
    median, best = medians(per_step), minimums(per_step)
    samples = {k: np.array(v) for k, v in per_step.items()}

    # Samples i of a and b were taken back to back: their ratio cancels most
    # of the machine's slow drift. Each pair: (median ratio, low, high).
    pairs = [
        ("ema", "none"),
        ("two_profiles", "none"),
        ("keras_use_ema", "none"),
        ("ema", "keras_use_ema"),
    ]
    paired = {p: paired_ratio(samples[p[0]], samples[p[1]]) for p in pairs}

    for label, stat in (("median", median), ("min", best)):
        print(
            f"  {title} {label} times: "
            f"ema/none={stat['ema'] / stat['none']:.3f} "
            f"keras_use_ema/none={stat['keras_use_ema'] / stat['none']:.3f} "
            f"ema/keras_use_ema={stat['ema'] / stat['keras_use_ema']:.3f}"
        )
    print(
        f"  {title} paired: "
        + " ".join(f"{a}/{b}={paired[a, b][0]:.3f}" for a, b in pairs)
    )
    print(
        f"  {title} paired, 95 % interval: "
        + " ".join(
            f"{a}/{b}={r:.3f} [{low:.3f}, {high:.3f}]"
            for (a, b), (r, low, high) in paired.items()
        )
    )
    line = ratio_line(
        "ema_overhead",
        per_step,
        "ema",
        "none",
        ratio=paired["ema", "none"][0],
        extra=[
            f"case={title} params={params}",
            f"keras_use_ema={median['keras_use_ema']:.3g} s",
            f"keras_use_ema min ratio="
            f"{best['keras_use_ema'] / best['none']:.3f}",
        ],
    )
    return line, median["none"]


if __name__ == "__main__":
    main()
