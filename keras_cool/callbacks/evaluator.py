"""Evaluate any user metric each epoch, log it, keep the best weights."""

import contextlib
import math
import os

import keras
import numpy as np

from keras_cool._backend import process_shard
from keras_cool._io import atomic_write
from keras_cool.callbacks._checks import check_count
from keras_cool.callbacks._checks import check_one_argument
from keras_cool.callbacks._checks import check_savable
from keras_cool.callbacks._checks import check_weights_context
from keras_cool.callbacks._checks import check_writable

__all__ = ["Evaluator"]


def _leaves(metrics):
    if isinstance(metrics, (list, tuple)):
        for metric in metrics:
            yield from _leaves(metric)
    elif metrics is not None:
        yield metrics


def _model_log_names(model):
    """The keys Keras writes into the logs for `model` (and `val_` ones)."""
    names = {"loss"}
    names.update(getattr(model, "metrics_names", None) or [])
    config = {}
    if getattr(model, "compiled", False):
        try:
            config = model.get_compile_config() or {}
        except Exception:  # not compiled the usual way: names above only
            config = {}
    metrics = config.get("metrics") or []
    if isinstance(metrics, dict):
        metrics = list(metrics.values())
    for metric in _leaves(metrics):
        if isinstance(metric, str):
            names.add(metric)
        elif isinstance(metric, dict):
            inner = metric.get("config")
            if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                names.add(inner["name"])
    return names | {f"val_{n}" for n in names}


class Evaluator(keras.callbacks.Callback):
    """Calls `evaluate_fn(model)` at epoch end, logs it, saves the best.

    For metrics that are not tensor expressions: clustering accuracy, BLEU,
    FID, anything computed in numpy on held-out data. The value is written
    into `logs[name]`, so callbacks that come **after** this one in the
    `callbacks` list (`ModelCheckpoint`, `EarlyStopping`,
    `ReduceLROnPlateau` with `monitor=name`), the progress bar and `History`
    all see it. Keras calls callbacks in list order: put `Evaluator` before
    the callbacks that monitor its value.

    When the value improves on the best so far (strictly; NaN never
    improves), `best` and `best_epoch` are updated and, if `filepath` is
    given, the weights are saved **atomically**: written to a temporary
    file in the same folder, then renamed over `filepath`, so an error or a
    crash during the save leaves the previous best file intact. The best is
    kept across `fit` calls with the same callback.

    Weight averaging: `weights_context` is an optional zero-argument
    callable returning a context manager during which the model holds other
    weights, e.g. the `swapped_weights` method of an exponential moving
    average callback (applies the averaged weights on enter, restores the
    raw ones on exit). The metric is computed **and** the best weights are
    saved inside that context, so "best" is judged on, and saved with, the
    averaged weights.

    Args:
        evaluate_fn: Python callable, `evaluate_fn(model) -> float`; called
            with the model being trained. A Keras metric or loss object
            (which needs `y_true` and `y_pred`) is refused: give it to
            `model.compile` instead and monitor its `val_` name.
        name: key of the value in `logs` (e.g. `"val_cluster_acc"`).
            Defaults to `"score"`.
        mode: `"max"` if larger is better, `"min"` if smaller is better.
            Defaults to `"max"`.
        filepath: where to keep the best weights, ending in `.weights.h5`;
            `None` keeps only `best` / `best_epoch`. Defaults to `None`.
        every_n_epochs: evaluate after every n-th epoch (epochs n, 2n, ...
            counting from 1); other epochs have no `logs[name]`. Defaults
            to `1`.
        initial_value_threshold: a value must beat this to count as the
            first best (like `ModelCheckpoint`'s). Defaults to `None`.
        weights_context: optional zero-argument callable returning a context
            manager, see above. Defaults to `None`.
        verbose: 1 prints the value and whether it was saved. Defaults to
            `0`.

    Example:

    ```python
    x, y = np.random.rand(64, 4), np.random.randint(0, 3, size=(64,))
    x_val, y_val = x[:16], y[:16]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("adam", "sparse_categorical_crossentropy")

    def accuracy(model):  # any metric computed in numpy
        labels = model.predict(x_val, verbose=0).argmax(-1)
        return float(np.mean(labels == y_val))

    evaluator = keras_cool.callbacks.Evaluator(
        accuracy, name="acc", mode="max", filepath="best.weights.h5"
    )
    stop = keras.callbacks.EarlyStopping(monitor="acc", mode="max")
    model.fit(x, y, epochs=3, verbose=0, callbacks=[evaluator, stop])
    model.load_weights("best.weights.h5")
    ```

    Reference:
        Su Jianlin, "让Keras更酷一些!" (Making Keras cooler), 2018: an
        evaluator callback that computes any metric and saves the best.
    """

    def __init__(
        self,
        evaluate_fn,
        name="score",
        mode="max",
        filepath=None,
        every_n_epochs=1,
        initial_value_threshold=None,
        weights_context=None,
        verbose=0,
    ):
        super().__init__()
        if not callable(evaluate_fn):
            raise TypeError(
                "evaluate_fn must be a callable `evaluate_fn(model) -> "
                f"float`, got {evaluate_fn!r}."
            )
        if isinstance(evaluate_fn, keras.metrics.Metric):
            raise TypeError(
                "evaluate_fn is a Keras metric object "
                f"({type(evaluate_fn).__name__}), which needs y_true and "
                "y_pred, but Evaluator calls evaluate_fn(model). Give it "
                "to model.compile(metrics=[...]), fit with validation_data "
                f"and monitor 'val_{evaluate_fn.name}'; or wrap it: "
                "def evaluate_fn(model): metric.reset_state(); "
                "metric.update_state(y_val, model.predict(x_val)); "
                "return float(metric.result())."
            )
        if isinstance(evaluate_fn, keras.losses.Loss):
            raise TypeError(
                "evaluate_fn is a Keras loss object "
                f"({type(evaluate_fn).__name__}), which needs y_true and "
                "y_pred, but Evaluator calls evaluate_fn(model). Give it "
                "to model.compile(loss=...), fit with validation_data and "
                "monitor 'val_loss'; or wrap it: def evaluate_fn(model): "
                "return float(loss(y_val, model.predict(x_val)))."
            )
        check_one_argument(
            "evaluate_fn", evaluate_fn, "`evaluate_fn(model) -> float`"
        )
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"name must be a non-empty str (a logs key), got {name!r}."
            )
        if mode not in ("max", "min"):
            raise ValueError(f'mode must be "max" or "min", got {mode!r}.')
        if filepath is not None and not str(filepath).endswith(".weights.h5"):
            raise ValueError(
                "filepath must end in `.weights.h5` (Keras's weights "
                f"format), got {filepath!r}."
            )
        check_count("every_n_epochs", every_n_epochs)
        check_weights_context(weights_context)
        self.evaluate_fn = evaluate_fn
        self.name = name
        self.mode = mode
        self.filepath = None if filepath is None else os.fspath(filepath)
        self.every_n_epochs = int(every_n_epochs)
        self.initial_value_threshold = initial_value_threshold
        self.weights_context = weights_context
        self.verbose = verbose
        self.best = initial_value_threshold
        if self.best is None:
            self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch = None
        self.values = []

    def _improves(self, value):
        if self.mode == "max":
            return value > self.best
        return value < self.best

    def _save(self, model):
        # Every process of a multi-process job evaluates (evaluate_fn may
        # run collectives); process 0 alone writes the file.
        if process_shard()[0] != 0:
            return
        atomic_write(
            self.filepath,
            lambda tmp: model.save_weights(tmp, overwrite=True),
            as_path=True,
        )

    def _evaluate(self, model):
        value = self.evaluate_fn(model)
        try:
            value = float(np.asarray(value).item())
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"Evaluator {self.name!r}: evaluate_fn must return one "
                f"number, got {value!r}."
            ) from error
        return value

    def on_train_begin(self, logs=None):
        taken = _model_log_names(self.model)
        if self.name in taken:
            raise ValueError(
                f"Evaluator name={self.name!r} collides with a value the "
                f"model already logs ({sorted(taken)}), so it would "
                "overwrite it in the logs and the History. Pick another "
                'name, e.g. "val_score".'
            )
        if self.filepath is not None:
            check_writable("filepath", self.filepath)
            check_savable("filepath", self.filepath, self.model.weights)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        if logs is not None and self.name in logs:
            raise ValueError(
                f"Evaluator name={self.name!r} is already in the logs "
                f"({sorted(logs)}); pick another name so that it does not "
                "overwrite a Keras value."
            )
        model = self.model  # on JAX: syncs the trained weights first
        context = self.weights_context or contextlib.nullcontext
        saved = False
        with context():
            value = self._evaluate(model)
            improved = self._improves(value)
            if improved and self.filepath is not None:
                self._save(model)
                saved = True
        if improved:
            self.best, self.best_epoch = value, epoch
        self.values.append((epoch, value))
        if logs is not None:
            logs[self.name] = value
        if self.verbose:
            note = " (best"
            note += f", saved to {self.filepath})" if saved else ")"
            print(
                f"\nEpoch {epoch + 1}: {self.name} = {value:.6g}"
                + (note if improved else f", best {self.best:.6g}")
            )
