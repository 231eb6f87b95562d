"""EMA failure paths: raw weights are back, bit-exact, whenever control
leaves fit/evaluate/predict, by return or by exception."""

import os
import signal

import keras
import numpy as np
import pytest

from keras_cool.callbacks import ExponentialMovingAverage

X = np.random.RandomState(0).rand(32, 4).astype("float32")
Y = np.random.RandomState(1).rand(32, 2).astype("float32")


def make_model():
    inp = keras.Input((4,))
    h = keras.layers.Dense(8)(inp)
    h = keras.layers.BatchNormalization()(h)
    out = keras.layers.Dense(2)(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def raw(model):
    return [np.array(v.numpy()) for v in model.weights]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


class Boom(Exception):
    pass


class RaiseAt(keras.callbacks.Callback):
    """Raises `error` in hook `where` (once), recording the weights first."""

    def __init__(self, where, error=Boom, sigint=False):
        super().__init__()
        self.where, self.error, self.sigint = where, error, sigint
        self.seen = None
        self.done = False

    def _fire(self, *args, **kwargs):
        if self.done:
            return
        self.done = True
        if self.sigint:
            os.kill(os.getpid(), signal.SIGINT)
            return
        raise self.error(self.where)

    def __getattribute__(self, name):
        if name == object.__getattribute__(self, "where"):
            return object.__getattribute__(self, "_fire")
        return object.__getattribute__(self, name)


def trained():
    """A model trained one epoch with an EMA (shadows differ from raw)."""
    model = make_model()
    ema = ExponentialMovingAverage(decay=0.5)
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[ema])
    return model, ema


@pytest.mark.parametrize(
    "error", [Boom, KeyboardInterrupt], ids=["exception", "interrupt"]
)
def test_error_during_validation_on_ema_first_fit(error):
    # The EMA is seen for the first time by this fit: validation runs
    # through the evaluate wrapper installed at set_model.
    model = make_model()
    ema = ExponentialMovingAverage(decay=0.5)
    bad = RaiseAt("on_test_batch_end", error)
    saved = {}

    class Keep(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

        def on_test_begin(self, logs=None):
            backup = ema._swap.backup
            saved["raw"] = backup and [np.array(v) for v in backup]

    with pytest.raises(error):
        model.fit(
            X,
            Y,
            batch_size=8,
            epochs=2,
            verbose=0,
            validation_data=(X, Y),
            callbacks=[ema, Keep(), bad],
        )
    assert not ema.applied
    assert saved["raw"] is not None  # the EMA weights were swapped in
    tracked = [np.array(v.numpy()) for v in ema.tracked_variables()]
    assert_same(tracked, saved["raw"])


def test_sigint_during_validation_on_ema():
    model, ema = trained()
    before = raw(model)
    bad = RaiseAt("on_test_batch_end", sigint=True)
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            X,
            Y,
            batch_size=8,
            epochs=1,
            verbose=0,
            validation_data=(X, Y),
            callbacks=[ema, bad],
        )
    assert not ema.applied
    # One epoch trained: the weights moved, but they are the raw ones.
    after = raw(model)
    model2_ema = ema.ema_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(after, model2_ema)), (
        "the model holds the EMA weights"
    )
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))


@pytest.mark.parametrize("method", ["evaluate", "predict"])
@pytest.mark.parametrize(
    "error", [Boom, KeyboardInterrupt], ids=["exception", "interrupt"]
)
def test_error_in_evaluate_or_predict_with_ema(method, error):
    model, ema = trained()
    before = raw(model)
    hook = (
        "on_test_batch_end" if method == "evaluate" else "on_predict_batch_end"
    )
    call = getattr(model, method)
    args = (X, Y) if method == "evaluate" else (X,)
    with pytest.raises(error):
        call(
            *args,
            batch_size=8,
            verbose=0,
            callbacks=[ema, RaiseAt(hook, error)],
        )
    assert not ema.applied
    assert_same(raw(model), before)


def test_error_in_evaluate_with_a_fresh_ema_from_state(tmp_path):
    # The EMA never saw this model before the call: the running evaluate
    # is not wrapped, so the frame watcher restores the weights.
    model, ema = trained()
    path = ema.save_state(str(tmp_path / "ema.npz"))
    fresh = ExponentialMovingAverage(decay=0.5)
    fresh.load_state(path)
    other = make_model()
    other.set_weights(model.get_weights())
    before = raw(other)
    with pytest.raises(Boom):
        keras.Model.evaluate(
            other,
            X,
            Y,
            batch_size=8,
            verbose=0,
            callbacks=[fresh, RaiseAt("on_test_batch_end")],
        )
    assert not fresh.applied
    assert_same(raw(other), before)


@pytest.mark.parametrize(
    "error", [Boom, KeyboardInterrupt], ids=["exception", "interrupt"]
)
def test_swap_on_epoch_then_a_later_callback_raises_first_fit(error):
    model = make_model()
    ema = ExponentialMovingAverage(decay=0.5, swap_on_epoch=True)
    seen = {}

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen["backup"] = [np.array(v) for v in ema._swap.backup]

    with pytest.raises(error):
        model.fit(
            X,
            Y,
            batch_size=8,
            epochs=2,
            verbose=0,
            callbacks=[ema, Record(), RaiseAt("on_epoch_end", error)],
        )
    assert not ema.applied
    tracked = [np.array(v.numpy()) for v in ema.tracked_variables()]
    assert_same(tracked, seen["backup"])


def test_swap_on_epoch_then_a_later_callback_raises_second_fit():
    model, _ = trained()
    ema = ExponentialMovingAverage(decay=0.5, swap_on_epoch=True)
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[ema])
    seen = {}

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen["backup"] = [np.array(v) for v in ema._swap.backup]

    with pytest.raises(Boom):
        model.fit(
            X,
            Y,
            batch_size=8,
            epochs=1,
            verbose=0,
            callbacks=[ema, Record(), RaiseAt("on_epoch_end")],
        )
    assert not ema.applied
    tracked = [np.array(v.numpy()) for v in ema.tracked_variables()]
    assert_same(tracked, seen["backup"])


def test_final_weights_ema_is_kept_and_next_fit_trains_raw():
    model = make_model()
    ema = ExponentialMovingAverage(decay=0.5, final_weights="ema")
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[ema])
    assert ema.applied  # the cleanup does not undo a requested state
    assert_same(raw(model)[:1], [ema.ema_weights()[0]])
    ema.reset_old_weights()


def test_wrapped_methods_keep_their_behaviour():
    model, ema = trained()
    assert model.fit.__wrapped__ is not None
    out = model.predict(X, verbose=0, batch_size=8)
    assert out.shape == (32, 2)
    logs = model.evaluate(X, Y, verbose=0, return_dict=True)
    assert set(logs) == {"loss"}
    assert not ema.applied


def test_first_fit_watcher_stops_once_the_epoch_swap_is_undone():
    # The first fit is watched by a profile function only while the EMA
    # weights are swapped in (from one epoch's end to the next's start).
    import sys

    model = make_model()
    ema = ExponentialMovingAverage(decay=0.5, swap_on_epoch=True)
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(("begin", epoch, sys.getprofile() is not None))

        def on_epoch_end(self, epoch, logs=None):
            seen.append(("end", epoch, sys.getprofile() is not None))

    model.fit(X, Y, batch_size=8, epochs=3, verbose=0, callbacks=[ema, Probe()])
    assert seen == [
        ("begin", 0, False),
        ("end", 0, True),
        ("begin", 1, False),
        ("end", 1, True),
        ("begin", 2, False),
        ("end", 2, True),
    ]
    assert sys.getprofile() is None
