"""The small training run that the multi-device tests compare.

Imported by the snippets of `fresh_process.run_fresh` (not a test file).
`fit_case(scope)` builds a Dense -> GradientSwitch -> Dense model (no
BatchNormalization: per-replica batch statistics differ by design) in
`scope`, trains it with an EMA, a linear learning-rate warmup and a
`VariableScheduler` on the switch's factor, on fixed global batches of 8,
and returns the raw weights, the EMA weights and the scheduled values seen
at every step, as lists (JSON).
"""

import contextlib
import json
import os
import tempfile

import keras
import numpy as np

import keras_cool

STEPS_PER_EPOCH = 4
BATCH = 8


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(STEPS_PER_EPOCH * BATCH, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [0.0]], "float32")).astype(
        "float32"
    )
    return x, y


def build(scope=None):
    keras.utils.set_random_seed(0)
    with scope or contextlib.nullcontext():
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(4, activation="tanh", name="hidden"),
                keras_cool.layers.GradientSwitch("scale", scale=1.0),
                keras.layers.Dense(1),
            ]
        )
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


class Record(keras.callbacks.Callback):
    """The learning rate and the switch factor at each step."""

    def __init__(self, switch):
        super().__init__()
        self.switch = switch
        self.seen = []

    def on_train_batch_begin(self, batch, logs=None):
        lr = self.model.optimizer.learning_rate
        factor = self.switch.factor
        self.seen.append(
            [float(np.asarray(lr)), float(np.asarray(factor.numpy()))]
        )


def fit_case(scope=None, x=None, y=None, epochs=2):
    if x is None:
        x, y = data()
    model = build(scope)
    switch = model.layers[1]
    ema = keras_cool.callbacks.ExponentialMovingAverage(decay=0.9)
    warmup = keras_cool.callbacks.LinearWarmup(warmup_steps=3)
    # The Python path on every setup: under a JAX distribution the in-graph
    # path is not available, and it writes the next step's value after each
    # step, which an EMA of the (non-trainable) factor would see.
    scheduler = keras_cool.callbacks.VariableScheduler(
        switch.factor, lambda step: 1.0 / (1.0 + step), in_graph=False
    )
    record = Record(switch)
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[warmup, scheduler, record, ema],
    )
    return (
        {
            "weights": [np.asarray(w).tolist() for w in model.get_weights()],
            "ema": [w.tolist() for w in ema.ema_weights()],
            "scheduled": record.seen,
            "step": ema.step,
        },
        model,
        ema,
    )


def report(result):
    print("RESULT " + json.dumps(result), flush=True)


def max_difference(a, b):
    return max(
        float(np.max(np.abs(np.asarray(p) - np.asarray(q))))
        for p, q in zip(a, b)
    )


def _fit_and_report(model, inputs, targets):
    history = model.fit(
        inputs,
        targets,
        batch_size=BATCH,
        epochs=2,
        shuffle=False,
        verbose=0,
    )
    return {
        "loss": [float(v) for v in history.history["loss"]],
        "weights": [np.asarray(w).tolist() for w in model.get_weights()],
    }


def fit_loss_layers(strategy=None):
    """The add_loss layers and the single-loss GAN on fixed batches, in
    `strategy.scope()` (TensorFlow) when given."""

    def scope():
        return strategy.scope() if strategy else contextlib.nullcontext()

    x, _ = data()
    labels = (np.arange(len(x)) % 3).astype("int32")
    out = {}
    keras.utils.set_random_seed(0)
    with scope():
        features = keras.Input((4,))
        label = keras.Input((), dtype="int32")
        h = keras.layers.Dense(2)(features)
        logits = keras_cool.layers.CenterLossDense(3, center_weight=0.5)(
            h, labels=label
        )
        model = keras.Model([features, label], logits)
        model.compile(
            keras.optimizers.SGD(0.1),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    out["center_loss"] = _fit_and_report(model, [x, labels], labels)

    keras.utils.set_random_seed(0)
    with scope():
        inputs = keras.Input((4,))
        z_mean = keras.layers.Dense(2)(inputs)
        z_log_var = keras.layers.Dense(2)(inputs)
        y = keras.layers.Dense(3, activation="softmax")(z_mean)
        y = keras_cool.layers.GaussianMixturePrior(num_classes=3)(
            [z_mean, z_log_var, y]
        )
        x_hat = keras.layers.Dense(4)(z_mean)
        model = keras.Model(inputs, [x_hat, y])
        model.compile(keras.optimizers.SGD(0.05), loss=["mse", None])
    out["mixture_prior"] = _fit_and_report(model, x, [x, labels])

    keras.utils.set_random_seed(0)
    noise = np.random.default_rng(1).normal(size=(len(x), 3))
    with scope():
        generator = keras.Sequential(
            [keras.Input((3,)), keras.layers.Dense(4)], name="g"
        )
        discriminator = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(1)], name="d"
        )
        real, z = keras.Input((4,)), keras.Input((3,))
        objective = keras_cool.layers.AdversarialObjective(discriminator)
        model = keras.Model([real, z], objective([real, generator(z)]))
        model.compile(optimizer=keras.optimizers.SGD(0.05))
    out["adversarial"] = _fit_and_report(
        model, [x, noise.astype("float32")], None
    )
    return out


def compare_loss_layers(one, other):
    """Largest loss and weight differences per model."""
    return {
        name: [
            max(abs(a - b) for a, b in zip(one[name]["loss"], r["loss"])),
            max_difference(one[name]["weights"], r["weights"]),
        ]
        for name, r in other.items()
    }


def compare_runs(one, other, model, ema, loss_layers):
    """`one` (one device) against `other` (`fit_case` under a distribution,
    whose `model` and `ema` are given), and the EMA's swap, save and state
    round trips on the distributed model."""
    out = {
        "weights": max_difference(one["weights"], other["weights"]),
        "ema": max_difference(one["ema"], other["ema"]),
        "scheduled": one["scheduled"] == other["scheduled"],
        "steps": [one["step"], other["step"]],
        "loss_layers": loss_layers,
    }

    def tracked():
        return [np.array(v.numpy()) for v in ema.tracked_variables()]

    raw = tracked()
    with ema.swapped_weights():
        out["swapped"] = max_difference(tracked(), ema.ema_weights())
    out["restored"] = max_difference(tracked(), raw)
    folder = tempfile.mkdtemp()
    ema.save_ema_model(os.path.join(folder, "ema.keras"))
    saved = keras.saving.load_model(os.path.join(folder, "ema.keras"))
    with ema.swapped_weights():
        out["saved_model"] = max_difference(
            saved.get_weights(), model.get_weights()
        )
    ema.save_state(os.path.join(folder, "state.npz"))
    again = type(ema)(decay=0.9)
    again.set_model(model)
    again.load_state(os.path.join(folder, "state.npz"))
    out["state"] = max_difference(again.ema_weights(), ema.ema_weights())
    return out
