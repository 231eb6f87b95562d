"""Bad inputs of keras_cool.callbacks (see tests/bad_input_rows.py)."""

import sys

import keras
import numpy as np

from keras_cool import callbacks as kc
from tests.bad_input_rows import NAN
from tests.bad_input_rows import C
from tests.bad_input_rows import Row
from tests.bad_input_rows import T
from tests.bad_input_rows import fit_with
from tests.bad_input_rows import model_with
from tests.bad_input_rows import not_a_folder

EMA = kc.ExponentialMovingAverage
E = kc.Evaluator
SG = kc.SampleGrid
VS = kc.VariableScheduler
LW = kc.LinearWarmup
ok_fn = lambda m: 0.0  # noqa: E731
var = keras.Variable(0.0)
gen = lambda z: np.zeros((len(z), 4, 4))  # noqa: E731
Z = np.zeros((4, 2), "float32")


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


def metrics_model():
    model = model_with()
    model.compile(keras.optimizers.SGD(0.1), "mse", metrics=["mae"])
    return model


def ema_state(content):
    with open("state.npz", "wb") as f:
        f.write(content)
    return kc.ExponentialMovingAverage().load_state("state.npz")


def ema_state_missing_keys():
    np.savez("other.npz", a=np.zeros(2))
    return kc.ExponentialMovingAverage().load_state("other.npz")


def without_pillow(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)


ROWS = [
    Row("ema-decay-1", "EMA", C, lambda: EMA(decay=1.0), ValueError, "decay"),
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
        "ema-sigma-0",
        "EMA",
        C,
        lambda: EMA(sigma_rel=0),
        ValueError,
        "sigma_rel",
    ),
    Row(
        "ema-sigma-wide",
        "EMA",
        C,
        lambda: EMA(sigma_rel=0.5),
        ValueError,
        "sigma_rel must be in (0, 0.2887]",
    ),
    Row(
        "ema-sigma-str",
        "EMA",
        C,
        lambda: EMA(sigma_rel="0.05"),
        TypeError,
        "sigma_rel must be a number",
    ),
    Row(
        "ema-sigma-empty",
        "EMA",
        C,
        lambda: EMA(sigma_rel=[]),
        ValueError,
        "sigma_rel",
    ),
    Row(
        "ema-sigma-item",
        "EMA",
        C,
        lambda: EMA(sigma_rel=(0.05, None)),
        TypeError,
        "sigma_rel[1]",
    ),
    Row(
        "ema-sigma-and-decay",
        "EMA",
        C,
        lambda: EMA(sigma_rel=0.1, decay=0.9),
        ValueError,
        "either sigma_rel or decay",
    ),
    Row(
        "ema-sigma-and-warmup",
        "EMA",
        C,
        lambda: EMA(sigma_rel=0.1, warmup="tfa"),
        ValueError,
        "either sigma_rel or decay/warmup",
    ),
    Row(
        "ema-snapshot-no-dir",
        "EMA",
        C,
        lambda: EMA(sigma_rel=0.1, snapshot_every=10),
        ValueError,
        "snapshot_dir",
    ),
    Row(
        "ema-snapshot-no-every",
        "EMA",
        C,
        lambda: EMA(sigma_rel=0.1, snapshot_dir="snapshots"),
        ValueError,
        "snapshot_every",
    ),
    Row(
        "ema-snapshot-every-0",
        "EMA",
        C,
        lambda: EMA(snapshot_every=0, snapshot_dir="snapshots"),
        ValueError,
        "snapshot_every",
    ),
    Row(
        "ema-snapshot-dir-file",
        "EMA",
        T,
        lambda: fit_with(
            EMA(sigma_rel=0.1, snapshot_every=1, snapshot_dir=not_a_folder())
        ),
        OSError,
        "snapshot_dir",
    ),
    Row(
        "ema-synthesize-no-snapshots",
        "EMA",
        C,
        lambda: EMA(snapshot_every=1, snapshot_dir="none").synthesize(0.1),
        ValueError,
        "No EMA snapshots",
    ),
    Row(
        "ema-synthesize-no-dir",
        "EMA",
        C,
        lambda: EMA(sigma_rel=0.1).synthesize(0.1),
        ValueError,
        "snapshot_dir",
    ),
    Row(
        "ema-synthesize-sigma",
        "EMA",
        C,
        lambda: EMA(snapshot_every=1, snapshot_dir="s").synthesize(1.0),
        ValueError,
        "sigma_rel",
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
        lambda: ema_state(b"not a zip"),
        ValueError,
        "load_state",
    ),
    Row(
        "ema-load-pickle",
        "EMA",
        C,
        lambda: ema_state(b"\x80\x04N."),
        ValueError,
        "load_state",
    ),
    Row(
        "ema-load-keys",
        "EMA",
        C,
        lambda: ema_state_missing_keys(),
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
        lambda: fit_with(EMA(state_path=not_a_folder())),
        OSError,
        "state_path",
    ),
    Row(
        "ema-decay-none",
        "EMA",
        C,
        lambda: EMA(decay=None),
        TypeError,
        "decay must be a number",
    ),
    Row(
        "ema-decay-str", "EMA", C, lambda: EMA(decay="0.99"), TypeError, "decay"
    ),
    Row(
        "ema-gamma-none",
        "EMA",
        C,
        lambda: EMA(warmup_gamma=None),
        TypeError,
        "warmup_gamma",
    ),
    Row(
        "ema-every-none",
        "EMA",
        C,
        lambda: EMA(update_every=None),
        TypeError,
        "update_every",
    ),
    Row(
        "ema-best-checkpoint-raw",
        "EMA",
        T,
        lambda: fit_with(
            EMA(),
            validation_split=0.25,
            extra=keras.callbacks.ModelCheckpoint(
                "best.keras", save_best_only=True
            ),
        ),
        ValueError,
        "swap_on_epoch=True",
    ),
    Row(
        "ema-early-stopping-raw",
        "EMA",
        T,
        lambda: fit_with(
            EMA(),
            validation_split=0.25,
            extra=keras.callbacks.EarlyStopping(restore_best_weights=True),
        ),
        ValueError,
        "swap_on_epoch=True",
    ),
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
        lambda: fit_with(E(ok_fn, filepath=not_a_folder() + ".weights.h5")),
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
    Row(
        "ev-keras-metric",
        "Evaluator",
        C,
        lambda: E(keras.metrics.Accuracy()),
        TypeError,
        "model.compile(metrics=[...])",
    ),
    Row(
        "ev-keras-loss",
        "Evaluator",
        C,
        lambda: E(keras.losses.MeanSquaredError()),
        TypeError,
        "model.compile(loss=...)",
    ),
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
        lambda: fit_with(SG(lambda z: np.zeros((4, 5)), Z, "a.png")),
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
                "b.png",
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
                "c.png",
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
                "d.png",
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
        lambda: fit_with(SG(gen, Z, not_a_folder() + "_{epoch}.png")),
        OSError,
        "filepath",
    ),
    Row(
        "sg-no-pillow",
        "SampleGrid",
        T,
        lambda: fit_with(SG(gen, Z, "p_{epoch}.png")),
        ImportError,
        "pip install Pillow",
        prepare=without_pillow,
    ),
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
]
