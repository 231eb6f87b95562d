"""All four callbacks in one `fit` with a verbose progress bar."""

import os

import keras
import numpy as np
from keras import ops

from keras_cool.callbacks import Evaluator
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
