"""Bad inputs across the public objects: one table, one test.

Each row gives the exception type, a message fragment (naming the
argument) and the stage where the error must be raised:

- "construction": the constructor (or the function call) raises;
- "build": building the functional graph raises (symbolic inputs only, no
  data has been seen);
- "on_train_begin": `fit` raises before any training step ran (the row's
  test checks that the optimizer made no step and no batch ended).
"""

import math
import os
import sys
from typing import Callable
from typing import NamedTuple

import keras
import numpy as np
import pytest

import keras_cool
from keras_cool import callbacks as kc
from keras_cool import layers as kl
from keras_cool import losses as kloss
from keras_cool import utils as ku
from keras_cool.data import Sequence
from keras_cool.optimizers.schedules import WarmupSchedule

NAN = float("nan")
X = np.random.RandomState(0).rand(8, 4).astype("float32")
Y = np.random.RandomState(1).rand(8, 2).astype("float32")


class Row(NamedTuple):
    id: str
    obj: str  # the public object the row is about
    stage: str
    run: Callable
    error: type
    fragment: str


def model_with(*layers_between):
    inp = keras.Input((4,))
    h = inp
    for layer in layers_between:
        h = layer(h)
    out = keras.layers.Dense(2)(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def fit_with(callback, model=None, x=X, y=Y, **kwargs):
    """A fit plan: (model, callbacks, fit kwargs)."""
    model = model or model_with()
    return model, [callback], dict(x=x, y=y, **kwargs)


class Batches(Sequence):
    length = 2

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return X[:4], Y[:4]


def sequence_len(value):
    data = Batches()
    data.length = value
    return model_with(), [], dict(x=data)


def symbolic(*shapes, dtype="float32"):
    return [keras.Input(s, dtype=dtype) for s in shapes]


def scheduled_variable(dtype="float32"):
    class Holder(keras.layers.Layer):
        def __init__(self):
            super().__init__()
            self.v = keras.Variable(0, dtype=dtype, trainable=False)

        def call(self, x):
            return x

    holder = Holder()
    return model_with(holder), holder.v


def scheduler_plan(schedule, dtype="float32", per="step"):
    model, variable = scheduled_variable(dtype)
    return fit_with(kc.VariableScheduler(variable, schedule, per=per), model)


def frozen_model():
    model = model_with(keras.layers.Dense(3))
    model.trainable = False
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def not_a_folder(tmp):
    blocker = os.path.join(tmp, "file")
    with open(blocker, "w") as f:
        f.write("x")
    return os.path.join(blocker, "sub", "x")


def gmp_logits():
    z, lv = symbolic((3,), (3,))
    logits = keras.layers.Dense(4)(z)
    return kl.GaussianMixturePrior(4)([z, lv, logits])


def gmp_eager_logits():
    z = np.zeros((2, 3), "float32")
    layer = kl.GaussianMixturePrior(4)
    return layer([z, z, np.full((2, 4), 3.0, "float32")])


def center_float_labels():
    feats = keras.Input((3,))
    labels = keras.Input((), dtype="float32")
    return kl.CenterLossDense(4)(feats, labels=labels)


def center_eager_float_labels():
    layer = kl.CenterLossDense(3)
    return layer(np.zeros((2, 2), "float32"), labels=np.array([0.0, 1.7]))


def discriminator():
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])


def adversarial_mismatch():
    real, fake = symbolic((4,), (5,))
    return kl.AdversarialObjective(discriminator())([real, fake])


def capture_scalar():
    class Scalar(keras.layers.Layer):
        def call(self, x):
            keras_cool.capture("total", keras.ops.sum(x))
            return x

    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(Scalar()(inp)))
    return keras_cool.OutputCapture(model, "total").predict(X, batch_size=4)


def capture_weight_shaped():
    class Kernel(keras.layers.Layer):
        def build(self, shape):
            self.k = self.add_weight(shape=(3, 3))

        def call(self, x):
            keras_cool.capture("kernel", keras.ops.convert_to_tensor(self.k))
            return x

    inp = keras.Input((4,))
    model = keras.Model(inp, Kernel()(inp))
    return keras_cool.OutputCapture(model, "kernel").predict(X, batch_size=4)


def ema_state(tmp, content):
    path = os.path.join(tmp, "state.npz")
    with open(path, "wb") as f:
        f.write(content)
    return kc.ExponentialMovingAverage().load_state(path)


def ema_state_missing_keys(tmp):
    path = os.path.join(tmp, "other.npz")
    np.savez(path, a=np.zeros(2))
    return kc.ExponentialMovingAverage().load_state(path)


def gan(fn, **kwargs):
    real = np.zeros((2, 1), "float32")
    return fn(real, real, **kwargs)


EMA = kc.ExponentialMovingAverage
E = kc.Evaluator
SG = kc.SampleGrid
VS = kc.VariableScheduler
LW = kc.LinearWarmup
C = "construction"
B = "build"
T = "on_train_begin"
ok_fn = lambda m: 0.0  # noqa: E731
var = keras.Variable(0.0)
gen = lambda z: np.zeros((len(z), 4, 4))  # noqa: E731
Z = np.zeros((4, 2), "float32")


def rows(tmp):
    return [
        # ExponentialMovingAverage -------------------------------------
        Row(
            "ema-decay-1", "EMA", C, lambda: EMA(decay=1.0), ValueError, "decay"
        ),
        Row(
            "ema-decay-nan",
            "EMA",
            C,
            lambda: EMA(decay=NAN),
            ValueError,
            "decay",
        ),
        Row(
            "ema-decay-neg",
            "EMA",
            C,
            lambda: EMA(decay=-0.1),
            ValueError,
            "decay",
        ),
        Row(
            "ema-warmup",
            "EMA",
            C,
            lambda: EMA(warmup="x"),
            ValueError,
            "warmup",
        ),
        Row(
            "ema-gamma",
            "EMA",
            C,
            lambda: EMA(warmup_gamma=0),
            ValueError,
            "warmup_gamma",
        ),
        Row(
            "ema-power",
            "EMA",
            C,
            lambda: EMA(warmup_power=-1),
            ValueError,
            "warmup_power",
        ),
        Row(
            "ema-start",
            "EMA",
            C,
            lambda: EMA(start_step=-1),
            ValueError,
            "start_step",
        ),
        Row(
            "ema-start-float",
            "EMA",
            C,
            lambda: EMA(start_step=1.5),
            ValueError,
            "start_step",
        ),
        Row(
            "ema-every",
            "EMA",
            C,
            lambda: EMA(update_every=0),
            ValueError,
            "update_every",
        ),
        Row(
            "ema-policy",
            "EMA",
            C,
            lambda: EMA(non_trainable="x"),
            ValueError,
            "non_trainable",
        ),
        Row(
            "ema-final",
            "EMA",
            C,
            lambda: EMA(final_weights="x"),
            ValueError,
            "final_weights",
        ),
        Row(
            "ema-state-field",
            "EMA",
            C,
            lambda: EMA(state_path="ema_{step}.npz"),
            ValueError,
            "state_path",
        ),
        Row(
            "ema-load-not-npz",
            "EMA",
            C,
            lambda: ema_state(tmp, b"not a zip"),
            ValueError,
            "load_state",
        ),
        Row(
            "ema-load-pickle",
            "EMA",
            C,
            lambda: ema_state(tmp, b"\x80\x04N."),
            ValueError,
            "load_state",
        ),
        Row(
            "ema-load-keys",
            "EMA",
            C,
            lambda: ema_state_missing_keys(tmp),
            ValueError,
            "save_state",
        ),
        Row(
            "ema-apply-empty",
            "EMA",
            C,
            lambda: EMA().apply_ema_weights(),
            RuntimeError,
            "no EMA yet",
        ),
        Row(
            "ema-reset-unapplied",
            "EMA",
            C,
            lambda: EMA().reset_old_weights(),
            RuntimeError,
            "not applied",
        ),
        Row(
            "ema-frozen",
            "EMA",
            T,
            lambda: fit_with(EMA(), frozen_model()),
            ValueError,
            "frozen",
        ),
        Row(
            "ema-frozen-ignore",
            "EMA",
            T,
            lambda: fit_with(EMA(non_trainable="ignore"), frozen_model()),
            ValueError,
            "no trainable",
        ),
        Row(
            "ema-state-folder",
            "EMA",
            T,
            lambda: fit_with(EMA(state_path=not_a_folder(tmp))),
            OSError,
            "state_path",
        ),
        # Evaluator -----------------------------------------------------
        Row("ev-fn", "Evaluator", C, lambda: E(3), TypeError, "evaluate_fn"),
        Row(
            "ev-fn-no-arg",
            "Evaluator",
            C,
            lambda: E(lambda: 0.0),
            TypeError,
            "evaluate_fn",
        ),
        Row(
            "ev-fn-two-args",
            "Evaluator",
            C,
            lambda: E(lambda m, x: 0.0),
            TypeError,
            "evaluate_fn",
        ),
        Row(
            "ev-mode",
            "Evaluator",
            C,
            lambda: E(ok_fn, mode="best"),
            ValueError,
            "mode",
        ),
        Row(
            "ev-name",
            "Evaluator",
            C,
            lambda: E(ok_fn, name=""),
            TypeError,
            "name",
        ),
        Row(
            "ev-name-type",
            "Evaluator",
            C,
            lambda: E(ok_fn, name=3),
            TypeError,
            "name",
        ),
        Row(
            "ev-filepath",
            "Evaluator",
            C,
            lambda: E(ok_fn, filepath="b.h5"),
            ValueError,
            "filepath",
        ),
        Row(
            "ev-every",
            "Evaluator",
            C,
            lambda: E(ok_fn, every_n_epochs=0),
            ValueError,
            "every_n_epochs",
        ),
        Row(
            "ev-context",
            "Evaluator",
            C,
            lambda: E(ok_fn, weights_context=3),
            TypeError,
            "weights_context",
        ),
        Row(
            "ev-name-loss",
            "Evaluator",
            T,
            lambda: fit_with(E(ok_fn, name="loss")),
            ValueError,
            "name='loss'",
        ),
        Row(
            "ev-name-val-loss",
            "Evaluator",
            T,
            lambda: fit_with(E(ok_fn, name="val_loss")),
            ValueError,
            "name='val_loss'",
        ),
        Row(
            "ev-name-metric",
            "Evaluator",
            T,
            lambda: fit_with(E(ok_fn, name="mae"), metrics_model()),
            ValueError,
            "name='mae'",
        ),
        Row(
            "ev-folder-missing",
            "Evaluator",
            T,
            lambda: fit_with(
                E(ok_fn, filepath=not_a_folder(tmp) + ".weights.h5")
            ),
            OSError,
            "filepath",
        ),
        Row(
            "ev-folder-proc",
            "Evaluator",
            T,
            lambda: fit_with(E(ok_fn, filepath="/proc/kc_no/b.weights.h5")),
            OSError,
            "filepath",
        ),
        # SampleGrid -----------------------------------------------------
        Row(
            "sg-generator",
            "SampleGrid",
            C,
            lambda: SG(3, Z),
            TypeError,
            "generator",
        ),
        Row(
            "sg-inputs",
            "SampleGrid",
            C,
            lambda: SG(gen, None),
            ValueError,
            "inputs",
        ),
        Row(
            "sg-mode",
            "SampleGrid",
            C,
            lambda: SG(gen, Z, mode="video"),
            ValueError,
            "mode",
        ),
        Row(
            "sg-never",
            "SampleGrid",
            C,
            lambda: SG(gen, Z, every_n_epochs=None),
            ValueError,
            "every_n_epochs",
        ),
        Row(
            "sg-every",
            "SampleGrid",
            C,
            lambda: SG(gen, Z, every_n_epochs=0),
            ValueError,
            "every_n_epochs",
        ),
        Row(
            "sg-steps",
            "SampleGrid",
            C,
            lambda: SG(gen, Z, every_n_steps=-2),
            ValueError,
            "every_n_steps",
        ),
        Row(
            "sg-field",
            "SampleGrid",
            C,
            lambda: SG(gen, Z, "s_{batch}.png"),
            ValueError,
            "filepath",
        ),
        Row(
            "sg-range-rev",
            "SampleGrid",
            C,
            lambda: SG(gen, Z, value_range=(1, 0)),
            ValueError,
            "value_range",
        ),
        Row(
            "sg-range-nan",
            "SampleGrid",
            C,
            lambda: SG(gen, Z, value_range=(0, NAN)),
            ValueError,
            "value_range",
        ),
        Row(
            "sg-range-one",
            "SampleGrid",
            C,
            lambda: SG(gen, Z, value_range=(1,)),
            ValueError,
            "value_range",
        ),
        Row(
            "sg-rows",
            "SampleGrid",
            C,
            lambda: SG(gen, Z, rows=0),
            ValueError,
            "rows",
        ),
        Row(
            "sg-limits",
            "SampleGrid",
            C,
            lambda: SG(gen, Z, mode="points", limits=(1, 1)),
            ValueError,
            "limits",
        ),
        Row(
            "sg-size",
            "SampleGrid",
            C,
            lambda: SG(gen, Z, mode="points", size=1),
            ValueError,
            "size",
        ),
        Row(
            "sg-context",
            "SampleGrid",
            C,
            lambda: SG(gen, Z, weights_context="x"),
            TypeError,
            "weights_context",
        ),
        Row(
            "sg-untileable",
            "SampleGrid",
            T,
            lambda: fit_with(
                SG(lambda z: np.zeros((4, 5)), Z, os.path.join(tmp, "a.png"))
            ),
            ValueError,
            "tile_images",
        ),
        Row(
            "sg-image-shape",
            "SampleGrid",
            T,
            lambda: fit_with(
                SG(
                    lambda z: np.zeros((4, 10)),
                    Z,
                    os.path.join(tmp, "b.png"),
                    image_shape=(3, 3),
                )
            ),
            ValueError,
            "image_shape",
        ),
        Row(
            "sg-nan-output",
            "SampleGrid",
            T,
            lambda: fit_with(
                SG(
                    lambda z: np.full((4, 3, 3), NAN),
                    Z,
                    os.path.join(tmp, "c.png"),
                )
            ),
            ValueError,
            "non-finite",
        ),
        Row(
            "sg-points-shape",
            "SampleGrid",
            T,
            lambda: fit_with(
                SG(
                    lambda z: np.zeros((4, 3)),
                    Z,
                    os.path.join(tmp, "d.png"),
                    mode="points",
                )
            ),
            ValueError,
            "points",
        ),
        Row(
            "sg-folder",
            "SampleGrid",
            T,
            lambda: fit_with(SG(gen, Z, not_a_folder(tmp) + "_{epoch}.png")),
            OSError,
            "filepath",
        ),
        # VariableScheduler ----------------------------------------------
        Row(
            "vs-number",
            "VariableScheduler",
            C,
            lambda: VS(0.5, lambda s: s),
            TypeError,
            "keras.Variable",
        ),
        Row(
            "vs-schedule",
            "VariableScheduler",
            C,
            lambda: VS(var, 3),
            TypeError,
            "schedule",
        ),
        Row(
            "vs-per",
            "VariableScheduler",
            C,
            lambda: VS(var, abs, per="batch"),
            ValueError,
            "per",
        ),
        Row(
            "vs-untracked",
            "VariableScheduler",
            T,
            lambda: fit_with(VS(keras.Variable(1.0), lambda s: 1.0)),
            ValueError,
            "not tracked",
        ),
        Row(
            "vs-none",
            "VariableScheduler",
            T,
            lambda: scheduler_plan(lambda s: None),
            TypeError,
            "schedule(0)",
        ),
        Row(
            "vs-str",
            "VariableScheduler",
            T,
            lambda: scheduler_plan(lambda s: "1"),
            TypeError,
            "schedule(0)",
        ),
        Row(
            "vs-nan",
            "VariableScheduler",
            T,
            lambda: scheduler_plan(lambda s: NAN),
            ValueError,
            "schedule(0)",
        ),
        Row(
            "vs-int-truncated",
            "VariableScheduler",
            T,
            lambda: scheduler_plan(lambda s: 0.5, "int32"),
            ValueError,
            "truncated",
        ),
        Row(
            "vs-epoch-none",
            "VariableScheduler",
            T,
            lambda: scheduler_plan(lambda e: None, per="epoch"),
            TypeError,
            "schedule(0)",
        ),
        Row(
            "vs-shape",
            "VariableScheduler",
            T,
            lambda: scheduler_plan(lambda s: [1.0, 2.0]),
            ValueError,
            "shape",
        ),
        # LinearWarmup / WarmupSchedule ------------------------------------
        Row(
            "lw-neither",
            "LinearWarmup",
            C,
            lambda: LW(),
            ValueError,
            "warmup_steps",
        ),
        Row(
            "lw-both",
            "LinearWarmup",
            C,
            lambda: LW(warmup_steps=2, warmup_epochs=1),
            ValueError,
            "warmup_epochs",
        ),
        Row(
            "lw-steps",
            "LinearWarmup",
            C,
            lambda: LW(warmup_steps=0),
            ValueError,
            "warmup_steps",
        ),
        Row(
            "lw-epochs",
            "LinearWarmup",
            C,
            lambda: LW(warmup_epochs=-1),
            ValueError,
            "warmup_epochs",
        ),
        Row(
            "lw-steps-nan",
            "LinearWarmup",
            C,
            lambda: LW(warmup_steps=NAN),
            ValueError,
            "warmup_steps",
        ),
        Row(
            "ws-schedule",
            "WarmupSchedule",
            C,
            lambda: WarmupSchedule(0.1, 10),
            TypeError,
            "LearningRateSchedule",
        ),
        Row(
            "ws-steps",
            "WarmupSchedule",
            C,
            lambda: WarmupSchedule(
                keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9), 0
            ),
            ValueError,
            "warmup_steps",
        ),
        # Sequence --------------------------------------------------------
        Row(
            "seq-workers",
            "Sequence",
            C,
            lambda: Batches(workers=-1),
            ValueError,
            "workers",
        ),
        Row(
            "seq-workers-float",
            "Sequence",
            C,
            lambda: Batches(workers=2.0),
            TypeError,
            "workers",
        ),
        Row(
            "seq-queue",
            "Sequence",
            C,
            lambda: Batches(max_queue_size=0),
            ValueError,
            "max_queue_size",
        ),
        Row(
            "seq-seed",
            "Sequence",
            C,
            lambda: Batches(seed=-1),
            ValueError,
            "seed",
        ),
        Row(
            "seq-start",
            "Sequence",
            C,
            lambda: Batches(start_method="nope"),
            ValueError,
            "start_method",
        ),
        Row(
            "seq-shard",
            "Sequence",
            C,
            lambda: Batches(shard=3),
            ValueError,
            "shard",
        ),
        Row(
            "seq-len-float",
            "Sequence",
            T,
            lambda: sequence_len(2.5),
            TypeError,
            "__len__",
        ),
        Row(
            "seq-len-zero",
            "Sequence",
            T,
            lambda: sequence_len(0),
            ValueError,
            "__len__",
        ),
        Row(
            "seq-len-none",
            "Sequence",
            T,
            lambda: sequence_len(None),
            TypeError,
            "__len__",
        ),
        # OutputCapture / capture -------------------------------------------
        Row(
            "oc-model",
            "OutputCapture",
            C,
            lambda: keras_cool.OutputCapture("m", "x"),
            TypeError,
            "model",
        ),
        Row(
            "oc-empty",
            "OutputCapture",
            C,
            lambda: keras_cool.OutputCapture(model_with(), []),
            ValueError,
            "target",
        ),
        Row(
            "oc-target",
            "OutputCapture",
            C,
            lambda: keras_cool.OutputCapture(model_with(), [3]),
            TypeError,
            "target",
        ),
        Row(
            "oc-scalar",
            "OutputCapture",
            B,
            capture_scalar,
            ValueError,
            "no batch axis",
        ),
        Row(
            "oc-weight",
            "OutputCapture",
            B,
            capture_weight_shaped,
            ValueError,
            "no batch axis",
        ),
        # Layers -----------------------------------------------------------
        Row(
            "vs-beta-nan",
            "VariationalSampling",
            C,
            lambda: kl.VariationalSampling(beta=NAN),
            ValueError,
            "beta",
        ),
        Row(
            "vs-beta-neg",
            "VariationalSampling",
            C,
            lambda: kl.VariationalSampling(beta=-1),
            ValueError,
            "beta",
        ),
        Row(
            "vs-beta-str",
            "VariationalSampling",
            C,
            lambda: kl.VariationalSampling(beta="1"),
            TypeError,
            "beta",
        ),
        Row(
            "vs-inputs",
            "VariationalSampling",
            B,
            lambda: kl.VariationalSampling()(symbolic((3,))[0]),
            ValueError,
            "[mean, log_var]",
        ),
        Row(
            "vs-pair",
            "VariationalSampling",
            B,
            lambda: kl.VariationalSampling()(symbolic((3,), (4,))),
            ValueError,
            "same shape",
        ),
        Row(
            "gmp-classes",
            "GaussianMixturePrior",
            C,
            lambda: kl.GaussianMixturePrior(1),
            ValueError,
            "num_classes",
        ),
        Row(
            "gmp-classes-str",
            "GaussianMixturePrior",
            C,
            lambda: kl.GaussianMixturePrior("10"),
            TypeError,
            "num_classes",
        ),
        Row(
            "gmp-kl-nan",
            "GaussianMixturePrior",
            C,
            lambda: kl.GaussianMixturePrior(3, kl_weight=NAN),
            ValueError,
            "kl_weight",
        ),
        Row(
            "gmp-balance",
            "GaussianMixturePrior",
            C,
            lambda: kl.GaussianMixturePrior(3, balance_weight=-1),
            ValueError,
            "balance_weight",
        ),
        Row(
            "gmp-marginal-inf",
            "GaussianMixturePrior",
            C,
            lambda: kl.GaussianMixturePrior(3, marginal_weight=math.inf),
            ValueError,
            "marginal_weight",
        ),
        Row(
            "gmp-classes-mismatch",
            "GaussianMixturePrior",
            B,
            lambda: kl.GaussianMixturePrior(3)(symbolic((2,), (2,), (4,))),
            ValueError,
            "num_classes=3",
        ),
        Row(
            "gmp-logits",
            "GaussianMixturePrior",
            B,
            gmp_logits,
            ValueError,
            "y_prob",
        ),
        Row(
            "gmp-eager-logits",
            "GaussianMixturePrior",
            C,
            gmp_eager_logits,
            ValueError,
            "y_prob",
        ),
        Row(
            "cld-units-str",
            "CenterLossDense",
            C,
            lambda: kl.CenterLossDense("10"),
            TypeError,
            "units",
        ),
        Row(
            "cld-units",
            "CenterLossDense",
            C,
            lambda: kl.CenterLossDense(1),
            ValueError,
            "units",
        ),
        Row(
            "cld-weight-nan",
            "CenterLossDense",
            C,
            lambda: kl.CenterLossDense(3, center_weight=NAN),
            ValueError,
            "center_weight",
        ),
        Row(
            "cld-float-labels",
            "CenterLossDense",
            B,
            center_float_labels,
            TypeError,
            "labels",
        ),
        Row(
            "cld-eager-float-labels",
            "CenterLossDense",
            C,
            center_eager_float_labels,
            TypeError,
            "labels",
        ),
        Row(
            "cld-features",
            "CenterLossDense",
            B,
            lambda: kl.CenterLossDense(3)(keras.Input((2, 2))),
            ValueError,
            "features",
        ),
        Row(
            "gs-mode",
            "GradientSwitch",
            C,
            lambda: kl.GradientSwitch("flip"),
            ValueError,
            "mode",
        ),
        Row(
            "gs-scale-nan",
            "GradientSwitch",
            C,
            lambda: kl.GradientSwitch(scale=NAN),
            ValueError,
            "scale",
        ),
        Row(
            "gs-scale-str",
            "GradientSwitch",
            C,
            lambda: kl.GradientSwitch(scale="1"),
            ValueError,
            "scale",
        ),
        Row(
            "ao-loss",
            "AdversarialObjective",
            C,
            lambda: kl.AdversarialObjective(discriminator(), loss="nope"),
            ValueError,
            "loss",
        ),
        Row(
            "ao-passes",
            "AdversarialObjective",
            C,
            lambda: kl.AdversarialObjective(discriminator(), passes=4),
            ValueError,
            "passes",
        ),
        Row(
            "ao-passes-2",
            "AdversarialObjective",
            C,
            lambda: kl.AdversarialObjective(
                discriminator(), loss="hinge", passes=2
            ),
            ValueError,
            "passes=3",
        ),
        Row(
            "ao-weight-nan",
            "AdversarialObjective",
            C,
            lambda: kl.AdversarialObjective(
                discriminator(), generator_weight=NAN
            ),
            ValueError,
            "generator_weight",
        ),
        Row(
            "ao-separate",
            "AdversarialObjective",
            C,
            lambda: kl.AdversarialObjective(
                discriminator(), separate_batches="yes"
            ),
            ValueError,
            "separate_batches",
        ),
        Row(
            "ao-disc",
            "AdversarialObjective",
            C,
            lambda: kl.AdversarialObjective("D"),
            TypeError,
            "discriminator",
        ),
        Row(
            "ao-mismatch",
            "AdversarialObjective",
            B,
            adversarial_mismatch,
            ValueError,
            "generated_samples",
        ),
        # Losses -------------------------------------------------------------
        Row(
            "gan-smoothing-3",
            "losses",
            C,
            lambda: gan(kloss.minimax_discriminator_loss, label_smoothing=3),
            ValueError,
            "label_smoothing",
        ),
        Row(
            "gan-smoothing-neg",
            "losses",
            C,
            lambda: gan(
                kloss.modified_discriminator_loss, label_smoothing=-0.1
            ),
            ValueError,
            "label_smoothing",
        ),
        Row(
            "gan-smoothing-gen",
            "losses",
            C,
            lambda: kloss.modified_generator_loss(
                np.zeros((2, 1)), label_smoothing=2
            ),
            ValueError,
            "label_smoothing",
        ),
        Row(
            "gan-smoothing-str",
            "losses",
            C,
            lambda: gan(
                kloss.minimax_discriminator_loss, label_smoothing="0.1"
            ),
            TypeError,
            "label_smoothing",
        ),
        Row(
            "gan-shapes",
            "losses",
            C,
            lambda: kloss.relativistic_discriminator_loss(
                np.zeros((2, 1)), np.zeros((3, 1))
            ),
            ValueError,
            "same shape",
        ),
        # utils ----------------------------------------------------------------
        Row(
            "ti-shape",
            "tile_images",
            C,
            lambda: ku.tile_images(np.zeros((2, 3))),
            ValueError,
            "tile_images",
        ),
        Row(
            "ti-channels",
            "tile_images",
            C,
            lambda: ku.tile_images(np.zeros((2, 3, 3, 2))),
            ValueError,
            "tile_images",
        ),
        Row(
            "ti-range-rev",
            "tile_images",
            C,
            lambda: ku.tile_images(np.zeros((1, 2, 2)), value_range=(1, 0)),
            ValueError,
            "value_range",
        ),
        Row(
            "ti-range-nan",
            "tile_images",
            C,
            lambda: ku.tile_images(np.zeros((1, 2, 2)), value_range=(0, NAN)),
            ValueError,
            "value_range",
        ),
        Row(
            "ti-nan",
            "tile_images",
            C,
            lambda: ku.tile_images(np.full((1, 2, 2), NAN)),
            ValueError,
            "non-finite",
        ),
        Row(
            "ti-rows",
            "tile_images",
            C,
            lambda: ku.tile_images(np.zeros((1, 2, 2)), rows=1.5),
            ValueError,
            "rows",
        ),
        Row(
            "pp-shape",
            "plot_points",
            C,
            lambda: ku.plot_points(np.zeros((3, 3))),
            ValueError,
            "points",
        ),
        Row(
            "pp-limits",
            "plot_points",
            C,
            lambda: ku.plot_points(np.zeros((3, 2)), limits=(1, 1)),
            ValueError,
            "limits",
        ),
        Row(
            "pp-limits-nan",
            "plot_points",
            C,
            lambda: ku.plot_points(np.zeros((3, 2)), limits=(0, NAN)),
            ValueError,
            "limits",
        ),
        Row(
            "pp-size",
            "plot_points",
            C,
            lambda: ku.plot_points(np.zeros((3, 2)), size=2.5),
            TypeError,
            "size",
        ),
        Row(
            "png-dtype",
            "save_png",
            C,
            lambda: ku.save_png(np.zeros((2, 2)), os.path.join(tmp, "x.png")),
            ValueError,
            "uint8",
        ),
    ]


def metrics_model():
    model = model_with()
    model.compile(keras.optimizers.SGD(0.1), "mse", metrics=["mae"])
    return model


class CountSteps(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


TABLE = rows("<tmp>")
IDS = [row.id for row in TABLE]


def test_table_size_and_spread():
    assert len(TABLE) >= 80
    assert len(set(IDS)) == len(IDS)
    objects = {row.obj for row in TABLE}
    public = {
        "EMA", "Evaluator", "SampleGrid", "VariableScheduler",
        "LinearWarmup", "WarmupSchedule", "Sequence", "OutputCapture",
        "VariationalSampling", "GaussianMixturePrior", "CenterLossDense",
        "GradientSwitch", "AdversarialObjective", "losses", "tile_images",
        "plot_points", "save_png",
    }  # fmt: skip
    assert objects == public


@pytest.mark.parametrize("index", range(len(TABLE)), ids=IDS)
def test_bad_input(index, tmp_path):
    if not sys.platform.startswith("linux") and "proc" in IDS[index]:
        pytest.skip("needs Linux's /proc")
    row = rows(str(tmp_path))[index]
    if row.stage in ("construction", "build"):
        with pytest.raises(row.error) as info:
            row.run()
    else:
        model, callbacks, kwargs = row.run()
        counter = CountSteps()
        options = dict(batch_size=4, epochs=2, verbose=0)
        options.update(kwargs)
        if isinstance(options["x"], Sequence):
            options.pop("batch_size")
        with pytest.raises(row.error) as info:
            model.fit(callbacks=callbacks + [counter], **options)
        assert counter.batches == 0, "the error came after a training step"
        iterations = getattr(model.optimizer, "iterations", None)
        if iterations is not None:
            assert int(np.asarray(iterations.numpy())) == 0
    assert row.fragment in str(info.value), str(info.value)
