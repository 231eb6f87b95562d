import contextlib
import os

import keras
import numpy as np
import pytest

from keras_cool.callbacks import Evaluator

X = np.linspace(-1, 1, 8, dtype="float32").reshape(8, 1)


def make_model():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    return model


class Scripted:
    """evaluate_fn returning scripted values; remembers the weights seen."""

    def __init__(self, values):
        self.values = list(values)
        self.weights = []

    def __call__(self, model):
        self.weights.append([w.copy() for w in model.get_weights()])
        # A typical evaluate_fn predicts on held-out data inside fit.
        predicted = model.predict(X[:2], verbose=0)
        kernel, bias = self.weights[-1]
        np.testing.assert_allclose(predicted, X[:2] @ kernel + bias, rtol=1e-5)
        return self.values[len(self.weights) - 1]


def fit(model, callbacks, epochs=4, verbose=0):
    return model.fit(
        X,
        2 * X + 1,
        batch_size=4,
        epochs=epochs,
        shuffle=False,
        verbose=verbose,
        callbacks=callbacks,
    ).history


def load(path):
    model = make_model()
    model.load_weights(path)
    return model.get_weights()


def assert_weights_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_logs_value_keeps_best_and_saves_its_weights(tmp_path):
    path = str(tmp_path / "best.weights.h5")
    score = Scripted([0.5, 0.7, 0.6, 0.9, 0.8])
    evaluator = Evaluator(score, name="acc", mode="max", filepath=path)
    history = fit(make_model(), [evaluator], epochs=5)
    assert history["acc"] == [0.5, 0.7, 0.6, 0.9, 0.8]
    assert evaluator.best == 0.9 and evaluator.best_epoch == 3
    assert_weights_equal(load(path), score.weights[3])
    assert not np.allclose(score.weights[3][0], score.weights[4][0])
    assert os.listdir(tmp_path) == ["best.weights.h5"]


def test_min_mode_threshold_and_every_n_epochs(tmp_path):
    path = str(tmp_path / "sub" / "best.weights.h5")
    score = Scripted([3.0, 1.0, 2.0, 0.5])
    evaluator = Evaluator(
        score,
        name="err",
        mode="min",
        filepath=path,
        every_n_epochs=2,
        initial_value_threshold=0.9,
    )
    model = make_model()
    history = fit(model, [evaluator], epochs=4)
    assert history["err"] == [3.0, 1.0]  # after epochs 2 and 4 only
    assert not os.path.exists(path)  # 1.0 does not beat the threshold
    assert evaluator.best == 0.9 and evaluator.best_epoch is None
    history = fit(model, [evaluator], epochs=4)
    assert history["err"] == [2.0, 0.5]
    assert evaluator.best == 0.5 and evaluator.best_epoch == 3
    assert_weights_equal(load(path), score.weights[3])


def test_later_callbacks_and_progress_bar_see_the_value(capsys):
    score = Scripted([0.1, 0.3, 0.2, 0.2, 0.2, 0.2])
    stopper = keras.callbacks.EarlyStopping(
        monitor="val_nmi", mode="max", patience=1
    )
    evaluator = Evaluator(score, name="val_nmi", mode="max")
    history = fit(make_model(), [evaluator, stopper], epochs=6, verbose=2)
    assert history["val_nmi"] == [0.1, 0.3, 0.2]  # stopped after epoch 3
    assert stopper.stopped_epoch == 2
    assert "val_nmi: 0.3000" in capsys.readouterr().out


def test_crash_during_save_keeps_previous_best(tmp_path):
    path = str(tmp_path / "best.weights.h5")
    score = Scripted([0.5, 0.9])
    evaluator = Evaluator(score, name="acc", filepath=path)
    model = make_model()
    fit(model, [evaluator], epochs=1)
    before = open(path, "rb").read()

    def broken_save(filepath, overwrite=True):
        with open(filepath, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    model.save_weights = broken_save
    with pytest.raises(OSError, match="disk full"):
        fit(model, [evaluator], epochs=1)
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["best.weights.h5"]  # no temp file left
    assert evaluator.best == 0.5 and evaluator.best_epoch == 0
    assert_weights_equal(load(path), score.weights[0])


class SwapWeights:
    """A stand-in for an EMA callback's `swapped_weights` context."""

    def __init__(self, model, value):
        self.model, self.value = model, value

    @contextlib.contextmanager
    def swapped_weights(self):
        raw = self.model.get_weights()
        self.model.set_weights([np.full_like(w, self.value) for w in raw])
        try:
            yield
        finally:
            self.model.set_weights(raw)


def test_weights_context_evaluates_and_saves_swapped_weights(tmp_path):
    path = str(tmp_path / "best.weights.h5")
    model = make_model()
    swap = SwapWeights(model, 7.0)
    raw_seen = []

    def kernel_value(model):
        return float(model.get_weights()[0][0, 0])

    evaluator = Evaluator(
        kernel_value,
        name="k",
        filepath=path,
        weights_context=swap.swapped_weights,
    )

    class RawWeights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raw_seen.append(self.model.get_weights()[0][0, 0])

    history = fit(model, [evaluator, RawWeights()], epochs=2)
    assert history["k"] == [7.0, 7.0]
    assert_weights_equal(load(path), [np.full((1, 1), 7.0), np.full(1, 7.0)])
    assert all(abs(v - 7.0) > 1 for v in raw_seen)  # raw weights restored


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="callable"):
        Evaluator(0.5)
    with pytest.raises(ValueError, match="mode"):
        Evaluator(len, mode="best")
    with pytest.raises(ValueError, match=".weights.h5"):
        Evaluator(len, filepath=str(tmp_path / "best.h5"))
    with pytest.raises(TypeError, match="one number"):
        fit(make_model(), [Evaluator(lambda m: [1.0, 2.0])], epochs=1)


@pytest.mark.parametrize(
    "obj, fragment",
    [
        (keras.metrics.Accuracy(), "model.compile(metrics=[...])"),
        (keras.metrics.AUC(name="auc"), "monitor 'val_auc'"),
        (keras.losses.MeanSquaredError(), "model.compile(loss=...)"),
    ],
)
def test_keras_metric_or_loss_objects_are_refused_at_once(obj, fragment):
    """A Keras metric (or loss) needs y_true and y_pred: refused at
    construction with the compile recipe, not after the first epoch."""
    with pytest.raises(TypeError, match="evaluate_fn") as info:
        Evaluator(obj, name="score")
    assert fragment in str(info.value)


def test_only_process_zero_writes_but_every_process_evaluates(
    tmp_path, monkeypatch
):
    # In process 1 of a multi-process job: evaluate (it may be a
    # collective), track the best, write nothing.
    monkeypatch.setattr(
        "keras_cool.callbacks.evaluator.process_shard", lambda: (1, 2)
    )
    path = str(tmp_path / "best.weights.h5")
    score = Scripted([0.5, 0.7])
    evaluator = Evaluator(score, name="acc", mode="max", filepath=path)
    history = fit(make_model(), [evaluator], epochs=2)
    assert history["acc"] == [0.5, 0.7] and evaluator.best_epoch == 1
    assert len(score.weights) == 2
    assert os.listdir(tmp_path) == []
