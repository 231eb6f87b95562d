"""One process of the 2-process JAX job of `tests/test_multi_process.py`.

Run as `python -m tests.multi_process_job PROCESS_ID PROCESSES PORT OUT`
(or `reference OUT` for the single-process run over the same global
batches). Each process joins the job on 127.0.0.1 with gloo CPU
collectives, sets `DataParallel(auto_shard_dataset=False)`, feeds its own
shard from `Sequence(shard="auto")` with worker processes, trains with an
EMA and writes its weights and EMA weights as JSON to OUT. With
`KC_DIE_AT_STEP=k`, process 1 exits abruptly at step k; the others print
`JOB FAILED: <error>` and exit with status 2.
"""

import json
import os
import sys

import keras
import numpy as np

import keras_cool

GLOBAL_BATCH = 8
BATCHES = 9  # per-process batches of the whole dataset, before sharding
EPOCHS = 2


class Shifted(keras_cool.Sequence):
    """Regression batches with per-batch seeded noise."""

    def __init__(self, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.batch_size = batch_size

    def __len__(self):
        return BATCHES

    def __getitem__(self, index):
        x = self.rng.normal(size=(self.batch_size, 4)).astype("float32")
        y = np.tanh(x @ np.array([[1.0], [-1.0], [0.5], [2.0]], "float32"))
        return x + 0.1 * index, y


def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(4, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


def dataset(shard, **kwargs):
    return Shifted(
        GLOBAL_BATCH // 2, seed=5, shuffle=True, shard=shard, **kwargs
    )


class DieAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.step:
            os._exit(3)


def result(model, ema, out):
    with open(out, "w") as f:
        json.dump(
            {
                "weights": [
                    np.asarray(w).tolist() for w in model.get_weights()
                ],
                "ema": [w.tolist() for w in ema.ema_weights()],
                "step": ema.step,
            },
            f,
        )


def refuse_split_saves(out):
    """The first kernel split over the 2 processes: the callbacks that
    write weights must refuse at `on_train_begin`, before any step."""
    mesh = keras.distribution.DeviceMesh(
        (1, 2), ["batch", "model"], keras.distribution.list_devices()
    )
    layouts = keras.distribution.LayoutMap(mesh)
    layouts[".*dense/kernel"] = (None, "model")
    keras.distribution.set_distribution(
        keras.distribution.ModelParallel(
            layout_map=layouts,
            batch_dim_name="batch",
            auto_shard_dataset=False,
        )
    )
    model = build()
    x = np.zeros((GLOBAL_BATCH, 4), "float32")
    callbacks = {
        "ema": keras_cool.callbacks.ExponentialMovingAverage(
            state_path=os.path.join(os.path.dirname(out), "ema.npz")
        ),
        "evaluator": keras_cool.callbacks.Evaluator(
            lambda model: 0.0,
            name="score",
            filepath=os.path.join(os.path.dirname(out), "best.weights.h5"),
        ),
    }
    refused = {}
    for name, callback in callbacks.items():
        try:
            model.fit(x, x[:, :1], epochs=1, verbose=0, callbacks=[callback])
        except ValueError as error:
            refused[name] = str(error)
    steps = int(model.optimizer.iterations.numpy())
    with open(out, "w") as f:
        json.dump({"refused": refused, "steps": steps}, f)


def run_process(process_id, processes, port, out):
    keras.distribution.initialize(
        job_addresses=f"127.0.0.1:{port}",
        num_processes=processes,
        process_id=process_id,
    )
    if os.environ.get("KC_SPLIT_SAVE"):
        return refuse_split_saves(out)
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(auto_shard_dataset=False)
    )
    data = dataset("auto", workers=1, use_multiprocessing=True)
    assert data.shard == (process_id, processes), data.shard
    model = build()
    ema = keras_cool.callbacks.ExponentialMovingAverage(decay=0.8)
    callbacks = [ema]
    die = os.environ.get("KC_DIE_AT_STEP")
    if die is not None and process_id == 1:
        callbacks.append(DieAt(int(die)))
    try:
        model.fit(
            data, epochs=EPOCHS, verbose=0, shuffle=False, callbacks=callbacks
        )
    except Exception as e:
        # The collective fails at once when a peer dies; skip JAX's exit
        # barrier, which would wait for its heartbeat timeout (100 s).
        print(f"JOB FAILED: {type(e).__name__}: {e}", flush=True)
        data.close()
        os._exit(2)
    data.close()
    result(model, ema, out)


def run_reference(out, processes=2):
    """One process, the same global batches: step k of every epoch is
    position k of shard 0 followed by position k of shard 1."""
    xs, ys = [], []
    parts = [dataset((p, processes)) for p in range(processes)]
    for _ in range(EPOCHS):
        epoch = [list(part) for part in parts]
        for step in zip(*epoch):
            xs.append(np.concatenate([x for x, _ in step]))
            ys.append(np.concatenate([y for _, y in step]))
    model = build()
    ema = keras_cool.callbacks.ExponentialMovingAverage(decay=0.8)
    model.fit(
        np.concatenate(xs),
        np.concatenate(ys),
        batch_size=GLOBAL_BATCH,
        shuffle=False,
        verbose=0,
        callbacks=[ema],
    )
    result(model, ema, out)


if __name__ == "__main__":
    if sys.argv[1] == "reference":
        run_reference(sys.argv[2])
    else:
        process_id, processes, port = map(int, sys.argv[1:4])
        run_process(process_id, processes, port, sys.argv[4])
