"""All four callbacks in one `fit` with a verbose progress bar."""

import os

import keras
import numpy as np
from keras import ops

from keras_cool.callbacks import Evaluator
from keras_cool.callbacks import ExponentialMovingAverage
from keras_cool.callbacks import LinearWarmup
from keras_cool.callbacks import SampleGrid
from keras_cool.callbacks import VariableScheduler


class Weighted(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.weight = keras.Variable(0.0, trainable=False, dtype="float32")

    def call(self, x):
        self.add_loss(self.weight * ops.mean(ops.square(x)))
        return x


def test_together_with_progress_bar(tmp_path, capsys):
    weighted = Weighted()
    generator = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(4, activation="sigmoid")]
    )
    model = keras.Sequential(
        [generator, weighted, keras.layers.Dense(1)], name="m"
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    noise = np.random.default_rng(0).normal(size=(4, 2)).astype("float32")
    best = str(tmp_path / "best.weights.h5")
    callbacks = [
        LinearWarmup(warmup_steps=4, verbose=1),
        VariableScheduler(weighted.weight, lambda e: 0.1 * e, per="epoch"),
        Evaluator(
            lambda m: -float(m.evaluate(noise, noise[:, :1], verbose=0)),
            name="neg_mse",
            filepath=best,
            verbose=1,
        ),
        SampleGrid(
            generator,
            noise,
            str(tmp_path / "e{epoch}.png"),
            image_shape=(2, 2),
            verbose=1,
        ),
    ]
    x = np.random.default_rng(1).normal(size=(12, 2)).astype("float32")
    history = model.fit(
        x, x[:, :1], batch_size=4, epochs=2, verbose=1, callbacks=callbacks
    )
    out = capsys.readouterr().out
    assert "warmup of 4 steps done" in out
    name = weighted.weight.name  # VariableScheduler's default log key
    assert "neg_mse:" in out and f"{name}: 0.1000" in out
    np.testing.assert_allclose(history.history[name], [0.0, 0.1])
    assert len(history.history["neg_mse"]) == 2
    assert os.path.exists(best)
    assert sorted(os.listdir(tmp_path)) == [
        "best.weights.h5",
        "e1.png",
        "e2.png",
    ]
    assert model.optimizer.learning_rate.numpy() == np.float32(0.01)


def test_evaluator_judges_and_saves_ema_weights(tmp_path):
    """Evaluator(weights_context=ema.swapped_weights): the score is computed
    on the EMA weights, the best file holds them, raw weights come back."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ema = ExponentialMovingAverage(decay=0.5)
    seen = []

    def score(m):
        weights = [np.array(w) for w in m.get_weights()]
        seen.append(weights)
        return -float(np.mean((m.predict(x, verbose=0) - y) ** 2))

    path = str(tmp_path / "best.weights.h5")
    evaluator = Evaluator(
        score,
        name="neg_mse",
        filepath=path,
        weights_context=ema.swapped_weights,
    )
    model.fit(
        x, y, batch_size=8, epochs=2, verbose=0, callbacks=[ema, evaluator]
    )
    raw = [np.array(w) for w in model.get_weights()]
    ema_weights = ema.ema_weights()
    # The last evaluation saw the EMA weights, not the raw ones.
    for seen_w, ema_w, raw_w in zip(seen[-1], ema_weights, raw):
        np.testing.assert_allclose(seen_w, ema_w, rtol=1e-6)
        assert not np.allclose(seen_w, raw_w)
    # The model holds the raw weights again after fit.
    assert not np.allclose(raw[0], ema_weights[0])
    # The best file holds the weights the best score was computed on.
    best = seen[evaluator.best_epoch]
    model.load_weights(path)
    for saved, expected in zip(model.get_weights(), best):
        np.testing.assert_allclose(saved, expected, rtol=1e-6)
