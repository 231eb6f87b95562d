"""
Title: The same training script on one process or several
Description: a small regression model trained with an
    `ExponentialMovingAverage` on a `keras_cool.Sequence(shard="auto")`, in
    one process by default, or as a multi-process JAX job
    (`keras.distribution` with `DataParallel`) with `--processes 2`, which
    starts the local workers itself on 127.0.0.1.
What you will see: the final loss and the EMA's loss on held-out data, a
    PNG of the training loss per epoch, and, with several processes, that
    all processes end with identical weights and EMA weights.

    python examples/distributed_training.py
    KERAS_BACKEND=jax python examples/distributed_training.py --processes 2
    python examples/distributed_training.py --quick    # a smoke run

On several hosts, run the same script on every host with the coordinator's
real address (host 0 listens on it):

    python examples/distributed_training.py --processes 2 \\
        --process-id 0 --coordinator 10.0.0.1:12345   # on host 0
    python examples/distributed_training.py --processes 2 \\
        --process-id 1 --coordinator 10.0.0.1:12345   # on host 1
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile

import keras
import numpy as np
from _cli import HelpFormatter
from _cli import add_quick_argument
from _cli import print_result
from _cli import quick_output_dir
from _plots import curves

import keras_cool

# ## Settings
#
# The global batch is split over the processes: each process feeds
# `global_batch / processes` examples per step from its own shard.
# `--help` lists every option with its default; `--quick` is the smoke run
# the tests use, written to `outputs/distributed_training/quick/`.


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="processes of the job (more than 1 needs KERAS_BACKEND=jax)",
    )
    parser.add_argument(
        "--process-id",
        type=int,
        default=None,
        help="this process's index; None: start all processes locally",
    )
    parser.add_argument(
        "--coordinator",
        default=None,
        help="HOST:PORT of process 0 (None: a free local port)",
    )
    parser.add_argument(
        "--global-batch",
        type=int,
        default=64,
        help="examples per step over all processes",
    )
    parser.add_argument("--epochs", type=int, default=5, help="epochs")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--output-dir",
        default="outputs/distributed_training",
        help="where loss.png goes",
    )
    # Internal: where a locally started worker writes its results.
    parser.add_argument("--report", default=None, help=argparse.SUPPRESS)
    add_quick_argument(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = 2
    if args.processes < 1 or args.global_batch % args.processes:
        parser.error("--global-batch must be a multiple of --processes >= 1.")
    return quick_output_dir(args)


# ## Data
#
# A `Sequence` of per-process batches. With `shard="auto"` each process
# keeps its own share of one global, per-epoch shuffled order (read from the
# running JAX job, or `torch.distributed`; `(0, 1)` when alone), so the
# shards are disjoint and every process runs the same number of steps.

TRUE_WEIGHTS = np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")


class Regression(keras_cool.Sequence):
    def __init__(self, batch_size, num_batches, **kwargs):
        super().__init__(**kwargs)
        self.batch_size = batch_size
        self.count = num_batches

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        x = self.rng.normal(size=(self.batch_size, 4)).astype("float32")
        y = np.tanh(x @ TRUE_WEIGHTS) + 0.05 * self.rng.normal(
            size=(self.batch_size, 1)
        ).astype("float32")
        return x, y.astype("float32")


def held_out():
    rng = np.random.default_rng(123)
    x = rng.normal(size=(512, 4)).astype("float32")
    return x, np.tanh(x @ TRUE_WEIGHTS).astype("float32")


# ## Model and training
#
# The same code on one process and on several: Keras's `DataParallel`
# replicates the weights and splits the global batch; the EMA runs once per
# optimizer step inside the compiled step, its shadows laid out like the
# weights.


def build_model(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(32, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    return model


def train(args, processes):
    data = Regression(
        args.global_batch // processes,
        num_batches=16 * processes,
        shard="auto",
        seed=args.seed,
        shuffle=True,
        workers=1,
        use_multiprocessing=processes > 1,
    )
    model = build_model(args.seed)
    ema = keras_cool.callbacks.ExponentialMovingAverage(decay=0.9)
    history = model.fit(
        data, epochs=args.epochs, shuffle=False, verbose=0, callbacks=[ema]
    )
    data.close()
    x, y = held_out()
    with ema.swapped_weights():
        ema_loss = float(model.evaluate(x, y, verbose=0))
    return {
        "loss": float(history.history["loss"][-1]),
        "history": [float(v) for v in history.history["loss"]],
        "ema_loss": ema_loss,
        "weights": [np.asarray(w).tolist() for w in model.get_weights()],
        "ema": [w.tolist() for w in ema.ema_weights()],
        "shard": list(data.shard),
    }


# ## One process of a multi-process job
#
# `keras.distribution.initialize` joins the job (process 0 hosts the
# coordinator); `auto_shard_dataset=False` tells Keras that each process
# already feeds its own shard, which is what `Sequence(shard="auto")` does.
# The CPU collectives use gloo (`JAX_CPU_COLLECTIVES_IMPLEMENTATION`).


def run_process(args):
    keras.distribution.initialize(
        job_addresses=args.coordinator,
        num_processes=args.processes,
        process_id=args.process_id,
    )
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(auto_shard_dataset=False)
    )
    result = train(args, args.processes)
    if args.report:
        with open(args.report, "w") as f:
            json.dump(result, f)
    return result


# ## Starting the local workers
#
# `--processes N` without `--process-id` starts N copies of this script on
# 127.0.0.1, bounded in time, and checks that they agree.


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args):
    coordinator = args.coordinator or f"127.0.0.1:{free_port()}"
    env = dict(os.environ, JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo")
    folder = tempfile.mkdtemp()
    reports = [os.path.join(folder, f"{i}.json") for i in range(args.processes)]
    children = []
    for i, report in enumerate(reports):
        command = [sys.executable, os.path.abspath(__file__)]
        command += ["--processes", str(args.processes), "--process-id", str(i)]
        command += ["--coordinator", coordinator, "--report", report]
        command += ["--epochs", str(args.epochs), "--seed", str(args.seed)]
        command += ["--global-batch", str(args.global_batch)]
        command += ["--output-dir", args.output_dir]
        children.append(subprocess.Popen(command, env=env))
    try:
        codes = [child.wait(timeout=600) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    if any(codes):
        sys.exit(f"a worker failed: exit codes {codes}")
    results = []
    for report in reports:
        with open(report) as f:
            results.append(json.load(f))
    return results


# ## Checking and plotting the results
#
# All processes must end with the same weights and EMA weights. The plot
# shows each process's training loss per epoch (one line when they agree)
# and the EMA weights' loss on held-out data.


def plot_losses(results, args):
    series = {
        f"training loss, process {i}": (
            range(1, len(r["history"]) + 1),
            r["history"],
        )
        for i, r in enumerate(results)
    }
    return curves(
        series,
        os.path.join(args.output_dir, "loss.png"),
        f"Regression with EMA on {len(results)} "
        f"process{'es' if len(results) > 1 else ''}, "
        f"{keras.backend.backend()}",
        "epoch",
        "mean squared error",
        levels={"held-out loss of the EMA weights": results[0]["ema_loss"]},
    )


def difference(a, b):
    return max(
        float(np.max(np.abs(np.asarray(p) - np.asarray(q))))
        for p, q in zip(a, b)
    )


# ## Putting it together
#
# One process trains in place; `--processes N` starts the workers (or, with
# `--process-id`, joins a job as one of them).


def main(argv=None):
    args = parse_args(argv)
    if args.processes > 1 and keras.backend.backend() != "jax":
        sys.exit(
            "--processes > 1 needs KERAS_BACKEND=jax: keras.distribution "
            "is implemented for JAX only in Keras 3.15."
        )
    if args.processes > 1 and args.process_id is not None:
        result = run_process(args)
        print(
            f"process {args.process_id}: final loss {result['loss']:.5f}",
            flush=True,
        )
        return
    if args.processes > 1:
        results = spawn(args)
    else:
        results = [train(args, 1)]
    first = results[0]
    spread = max(
        max(difference(first["weights"], r["weights"]) for r in results),
        max(difference(first["ema"], r["ema"]) for r in results),
    )
    agree = spread == 0.0
    print(f"processes: {len(results)}, shards {[r['shard'] for r in results]}")
    print(
        f"final loss {first['loss']:.5f}, EMA held-out loss "
        f"{first['ema_loss']:.5f}"
    )
    print(f"all processes agree: {agree} (largest difference {spread:.3g})")
    path = plot_losses(results, args)
    print("wrote", path)
    print_result(
        args,
        f"processes={len(results)} loss={first['loss']:.5f} "
        f"ema_loss={first['ema_loss']:.5f} agree={int(agree)}",
    )


if __name__ == "__main__":
    main()
