import keras
import numpy as np
import pytest

import keras_cool
from keras_cool.callbacks import ExponentialMovingAverage
from keras_cool.testing import run_serialization_test

X = np.random.RandomState(0).rand(32, 4).astype("float32")
Y = np.random.RandomState(1).rand(32, 2).astype("float32")


def functional_model(dtype=None, units=8):
    inp = keras.Input((4,))
    h = keras.layers.Dense(units, dtype=dtype)(inp)
    h = keras.layers.BatchNormalization()(h)
    out = keras.layers.Dense(2, dtype=dtype)(h)
    return keras.Model(inp, out)


class SubclassedModel(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8)
        self.norm = keras.layers.BatchNormalization()
        self.out = keras.layers.Dense(2)

    def call(self, x, training=None):
        return self.out(self.norm(self.hidden(x), training=training))


def compiled(model=None, optimizer=None):
    model = model or functional_model()
    model.compile(optimizer or keras.optimizers.SGD(0.1), "mse")
    return model


def values(variables):
    return [np.array(v.numpy()) for v in variables]


class RecordWeights(keras.callbacks.Callback):
    """Records the tracked model variables before training and per step."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def _record(self):
        # The tracked variables are model.weights here (no seed states).
        self.steps.append(values(self.model.weights))

    def on_train_begin(self, logs=None):
        self._record()

    def on_train_batch_end(self, batch, logs=None):
        self._record()


def expected_shadows(steps, decay_at, update_every=1):
    shadows = [w.astype("float32") for w in steps[0]]
    for step, weights in enumerate(steps[1:], start=1):
        if step % update_every:
            continue
        d = np.float32(decay_at(step))
        shadows = [d * s + (1 - d) * w for s, w in zip(shadows, weights)]
    return shadows


@pytest.mark.parametrize(
    "kind, kwargs, decay_at",
    [
        ("functional", dict(decay=0.9), lambda t: 0.9),
        # 1.8e5 weights, a wide layer's update.
        ("wide", dict(decay=0.9), lambda t: 0.9),
        (
            "subclassed",
            dict(decay=0.9, warmup="tfa"),
            lambda t: min(0.9, (1 + t) / (10 + t)),
        ),
        (
            "functional",
            dict(decay=0.99, warmup="power", start_step=2, update_every=3),
            lambda t: (
                0.0 if t <= 2 else min(0.99, 1 - (1 + (t - 2)) ** (-2.0 / 3.0))
            ),
        ),
    ],
)
def test_shadows_follow_the_recurrence(kind, kwargs, decay_at):
    if kind == "subclassed":
        model = compiled(SubclassedModel())
    elif kind == "wide":  # a small step: SGD(0.1) diverges at this width
        model = compiled(
            functional_model(units=16384), keras.optimizers.SGD(1e-3)
        )
    else:
        model = compiled(functional_model())
    model(X[:1])
    record = RecordWeights()
    ema = ExponentialMovingAverage(**kwargs)
    fast = ExponentialMovingAverage(decay=0.5)  # a second one, same model
    model.fit(
        X,
        Y,
        batch_size=8,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[record, ema, fast],
    )
    fast_expected = expected_shadows(record.steps, lambda t: 0.5)
    for g, e in zip(fast.ema_weights(), fast_expected):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)
    assert ema.step == 8
    expected = expected_shadows(
        record.steps, decay_at, kwargs.get("update_every", 1)
    )
    got = ema.ema_weights()
    assert len(got) == len(expected) == 8  # 6 trainable + BN mean, var
    for g, e in zip(got, expected):
        assert g.dtype == np.float32 and np.isfinite(g).all()
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)
    # Training ran on the raw weights, which are still in the model.
    for v, r in zip(ema.tracked_variables(), record.steps[-1]):
        np.testing.assert_array_equal(v.numpy(), r)
    assert not np.allclose(got[0], record.steps[-1][0])  # first kernel
    ema.detach()
    fast.detach()
    assert "train_step" not in vars(model)
    assert not hasattr(model, "_keras_cool_ema_chain")


def test_apply_restore_is_bit_exact_and_errors_are_clear():
    model = compiled()
    ema = ExponentialMovingAverage(decay=0.5)
    with pytest.raises(RuntimeError, match="no EMA yet"):
        ema.apply_ema_weights()
    with pytest.raises(RuntimeError, match="not applied"):
        ema.reset_old_weights()
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[ema])
    raw = values(model.weights)
    for _ in range(100):
        ema.apply_ema_weights()
        ema.reset_old_weights()
    for v, r in zip(model.weights, raw):
        np.testing.assert_array_equal(v.numpy(), r)
    ema.apply_ema_weights()
    for v, s in zip(ema.tracked_variables(), ema.ema_weights()):
        np.testing.assert_array_equal(v.numpy(), s)
    with pytest.raises(RuntimeError, match="already applied"):
        ema.apply_ema_weights()
    ema.reset_old_weights()
    with pytest.raises(RuntimeError, match="not applied"):
        ema.reset_old_weights()
    with pytest.raises(ValueError, match="boom"):
        with ema.swapped_weights():
            raise ValueError("boom")
    assert not ema.applied
    for v, r in zip(model.weights, raw):
        np.testing.assert_array_equal(v.numpy(), r)


def test_swapped_weights_nest_and_work_with_swap_on_epoch():
    model = compiled()
    seen = []

    def score(m):
        seen.append(values(m.weights))
        return 0.0

    ema = ExponentialMovingAverage(decay=0.5, swap_on_epoch=True)
    evaluator = keras_cool.callbacks.Evaluator(
        score, name="score", weights_context=ema.swapped_weights
    )
    model.fit(
        X, Y, batch_size=8, epochs=2, verbose=0, callbacks=[ema, evaluator]
    )
    assert len(seen) == 2 and not ema.applied
    raw = values(model.weights)
    with ema.swapped_weights():
        shadows = values(model.weights)
        with ema.swapped_weights():  # nested: nothing changes
            assert ema.applied
            for v, s in zip(model.weights, shadows):
                np.testing.assert_array_equal(v.numpy(), s)
        assert ema.applied
    assert not ema.applied
    for v, r in zip(model.weights, raw):
        np.testing.assert_array_equal(v.numpy(), r)
    for v, s in zip(seen[-1], shadows):  # the evaluator saw the EMA weights
        np.testing.assert_array_equal(v, s)


def bn_stats(model):
    return [
        np.array(v.numpy())
        for v in model.non_trainable_variables
        if "moving" in v.path
    ]


@pytest.mark.parametrize("policy", ["average", "copy", "ignore"])
def test_batch_norm_statistics_follow_the_policy(policy):
    model = compiled()
    ema = ExponentialMovingAverage(decay=0.9, non_trainable=policy)
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[ema])
    raw_stats = bn_stats(model)
    tracked = len(ema.tracked_variables())
    with ema.swapped_weights():
        swapped_stats = bn_stats(model)
    same = [np.array_equal(a, b) for a, b in zip(raw_stats, swapped_stats)]
    if policy == "average":
        assert tracked == 8 and not any(same)
    elif policy == "copy":  # copied at the last update: the raw values
        assert tracked == 8 and all(same)
        assert ema.ema_weights()[-1].dtype == raw_stats[-1].dtype
    else:
        assert tracked == 6 and all(same)


@pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="the JAX train-step state"
)
def test_small_shadows_travel_as_one_array_on_jax():
    # Dense(4 -> 16384): a 65,536-weight kernel travels alone; the other
    # seven shadows (biases, BatchNormalization, a small kernel) as one.
    model = compiled(functional_model(units=16384), keras.optimizers.SGD(1e-3))
    ema = ExponentialMovingAverage(decay=0.9)
    record = RecordWeights()
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[record, ema])
    state = ema._update.hook_state()
    assert len(ema.tracked_variables()) == 8
    assert len(state) == 3  # step, the packed seven, the large kernel
    assert tuple(state[2].shape) == (4, 16384)
    expected = expected_shadows(record.steps, lambda t: 0.9)
    for got, e in zip(ema.ema_weights(), expected):
        assert got.shape == e.shape
        np.testing.assert_allclose(got, e, rtol=1e-6, atol=1e-6)


def test_integer_and_low_precision_variables():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, dtype="bfloat16"),
            keras.layers.Dropout(0.5, seed=1),
            keras.layers.Dense(2, dtype="float32"),
        ]
    )
    model = compiled(model)
    ema = ExponentialMovingAverage(decay=0.9)
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[ema])
    shadows = ema.ema_weights()
    for variable, shadow in zip(ema.tracked_variables(), shadows):
        dtype = keras.backend.standardize_dtype(variable.dtype)
        if "float" in dtype:
            assert shadow.dtype == np.float32
        else:  # e.g. a seed generator's state: copied in its own dtype
            assert str(shadow.dtype) == dtype
            np.testing.assert_array_equal(shadow, variable.numpy())
    ema.apply_ema_weights()
    assert keras.backend.standardize_dtype(model.weights[0].dtype) == (
        "bfloat16"
    )
    ema.reset_old_weights()


def test_save_load_continue_equals_uninterrupted(tmp_path):
    def run(callbacks, epochs, initial_epoch=0, model=None):
        model = model or compiled(optimizer=keras.optimizers.Adam(0.01))
        model.fit(
            X,
            Y,
            batch_size=8,
            epochs=epochs,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
            initial_epoch=initial_epoch,
        )
        return model

    keras.utils.set_random_seed(3)
    full = ExponentialMovingAverage(decay=0.8, warmup="tfa")
    run([full], epochs=2)

    keras.utils.set_random_seed(3)
    first = ExponentialMovingAverage(
        decay=0.8, warmup="tfa", state_path=str(tmp_path / "ema_{epoch}.npz")
    )
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "model_{epoch}.keras")
    )
    run([first, checkpoint], epochs=1)

    resumed_model = keras.saving.load_model(tmp_path / "model_1.keras")
    resumed = ExponentialMovingAverage(decay=0.8, warmup="tfa")
    resumed.load_state(tmp_path / "ema_1.npz")
    run([resumed], epochs=2, initial_epoch=1, model=resumed_model)
    assert resumed.step == full.step == 8
    for a, b in zip(resumed.ema_weights(), full.ema_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)

    # A saved state can be used without training: set_model, load_state.
    deploy = ExponentialMovingAverage()
    deploy.set_model(resumed_model)
    deploy.load_state(tmp_path / "ema_1.npz")
    assert deploy.step == 4
    with np.load(tmp_path / "ema_1.npz") as saved:
        np.testing.assert_array_equal(
            deploy.ema_weights()[0], saved["shadow_0"]
        )

    # A state that does not fit the model is refused with a clear error.
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    wrong = ExponentialMovingAverage()
    wrong.load_state(tmp_path / "ema_1.npz")
    with pytest.raises(ValueError, match="shadow weights"):
        compiled(other).fit(
            X, Y[:, :1].repeat(3, 1), verbose=0, callbacks=[wrong]
        )


class PredictAtEpochEnd(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.prediction = self.model.predict(X, verbose=0)


@pytest.mark.parametrize("on_ema", [True, False])
def test_validation_and_predictions_inside_fit(on_ema, tmp_path):
    model = compiled()
    ema = ExponentialMovingAverage(
        decay=0.9, validate_on_ema=on_ema, swap_on_epoch=on_ema
    )
    probe = PredictAtEpochEnd()
    # Listed after the EMA: with swap_on_epoch it saves the EMA weights.
    checkpoint = keras.callbacks.ModelCheckpoint(tmp_path / "ckpt.keras")
    history = model.fit(
        X,
        Y,
        batch_size=8,
        epochs=1,
        verbose=0,
        validation_data=(X, Y),
        callbacks=[ema, probe, checkpoint],
    )
    raw_prediction = model.predict(X, verbose=0)
    raw_loss = model.evaluate(X, Y, verbose=0)
    with ema.swapped_weights():
        ema_prediction = model.predict(X, verbose=0)
        ema_loss = model.evaluate(X, Y, verbose=0)
    assert not np.allclose(raw_prediction, ema_prediction)
    expected_loss = ema_loss if on_ema else raw_loss
    expected_prediction = ema_prediction if on_ema else raw_prediction
    np.testing.assert_allclose(
        history.history["val_loss"][-1], expected_loss, rtol=1e-5
    )
    np.testing.assert_allclose(
        probe.prediction, expected_prediction, rtol=1e-5, atol=1e-6
    )
    checkpointed = keras.saving.load_model(tmp_path / "ckpt.keras")
    np.testing.assert_allclose(
        checkpointed.predict(X, verbose=0),
        expected_prediction,
        rtol=1e-5,
        atol=1e-6,
    )
    # evaluate / predict given the callback run on EMA weights (if asked),
    # and leave the raw weights in the model.
    np.testing.assert_allclose(
        model.predict(X, verbose=0, callbacks=[ema]),
        expected_prediction,
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_array_equal(model.predict(X, verbose=0), raw_prediction)
    # The deployment model holds the EMA weights.
    ema.save_ema_model(tmp_path / "ema.keras")
    loaded = keras.saving.load_model(tmp_path / "ema.keras")
    np.testing.assert_allclose(
        loaded.predict(X, verbose=0), ema_prediction, rtol=1e-5, atol=1e-6
    )


def test_final_weights_ema_then_training_resumes_on_raw():
    model = compiled()
    record = RecordWeights()
    ema = ExponentialMovingAverage(decay=0.9, final_weights="ema")
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[record, ema])
    assert ema.applied
    for v, s in zip(ema.tracked_variables(), ema.ema_weights()):
        np.testing.assert_array_equal(v.numpy(), s)
    raw = record.steps[-1]
    second = RecordWeights()
    # Listed first, it restores the raw weights before the others start.
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[ema, second])
    for a, b in zip(second.steps[0], raw):
        np.testing.assert_array_equal(a, b)
    ema.reset_old_weights()
    for v, r in zip(ema.tracked_variables(), second.steps[-1]):
        np.testing.assert_array_equal(v.numpy(), r)
    assert ema.step == 8
    # A fit without the callback trains as usual and leaves the EMA alone,
    # and the compiled train function is kept for the next fit with it.
    function = model.train_function
    shadows = ema.ema_weights()
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    assert model.train_function == function  # not rebuilt
    assert ema.step == 8
    for a, b in zip(ema.ema_weights(), shadows):
        np.testing.assert_array_equal(a, b)
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0, callbacks=[ema])
    assert ema.step == 12


def test_config_and_exports():
    assert keras_cool.ExponentialMovingAverage is ExponentialMovingAverage
    kwargs = dict(
        decay=0.99,
        warmup="power",
        warmup_gamma=2.0,
        warmup_power=0.75,
        start_step=10,
        update_every=2,
        non_trainable="copy",
        validate_on_ema=False,
        swap_on_epoch=True,
        final_weights="ema",
        state_path="ema_{epoch}.npz",
    )
    run_serialization_test(ExponentialMovingAverage(**kwargs), kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(decay=1.0), "decay"),
        (dict(decay=float("nan")), "decay"),
        (dict(warmup="linear"), "warmup"),
        (dict(warmup_gamma=0), "warmup_gamma"),
        (dict(update_every=0), "update_every"),
        (dict(start_step=-1), "start_step"),
        (dict(start_step=1.5), "start_step must be an integer"),
        (dict(non_trainable="mean"), "non_trainable"),
        (dict(final_weights="best"), "final_weights"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ExponentialMovingAverage(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(decay=None), r"decay must be a number in \[0, 1\).*None"),
        (dict(decay="0.99"), r"decay must be a number in \[0, 1\)"),
        (dict(decay=[0.9]), r"decay must be a number in \[0, 1\)"),
        (dict(decay=True), r"decay must be a number in \[0, 1\)"),
        (dict(warmup_gamma=None), "warmup_gamma must be a number > 0"),
        (dict(warmup_power="2/3"), "warmup_power must be a number > 0"),
        (dict(start_step=None), "start_step must be a number >= 0"),
        (dict(update_every=None), "update_every must be a number >= 1"),
    ],
)
def test_arguments_that_are_not_numbers(kwargs, match):
    # A TypeError naming the argument and its range, not float()'s own.
    with pytest.raises(TypeError, match=match):
        ExponentialMovingAverage(**kwargs)
    # Numbers of any numeric type are accepted.
    ema = ExponentialMovingAverage(decay=np.float32(0.5), update_every=2.0)
    assert ema.decay == 0.5 and ema.update_every == 2


def test_ema_weights_are_in_model_weights_order(tmp_path):
    # BatchNormalization, then LayerNormalization: trainable-first order
    # would put LayerNormalization's gamma and beta on BatchNormalization's
    # moving mean and variance (same shapes, so set_weights takes them).
    inp = keras.Input((4,))
    h = keras.layers.BatchNormalization()(keras.layers.Dense(8)(inp))
    model = compiled(keras.Model(inp, keras.layers.LayerNormalization()(h)))
    y = np.random.RandomState(4).rand(32, 8).astype("float32") - 2.0
    ema = ExponentialMovingAverage(decay=0.9)
    model.fit(X, y, batch_size=8, epochs=2, verbose=0, callbacks=[ema])
    paths = [v.path for v in model.weights]
    assert [v.path for v in ema.tracked_variables()] == paths
    with ema.swapped_weights():
        swapped = values(model.weights)
    ema.save_state(tmp_path / "state.npz")
    ema.save_ema_model(tmp_path / "ema.keras")

    model.set_weights(ema.ema_weights())
    for variable, expected in zip(model.weights, swapped):
        np.testing.assert_array_equal(variable.numpy(), expected)
    variance = [v for v in model.weights if "moving_variance" in v.path]
    assert (variance[0].numpy() > 0).all()
    # The saved state pairs each shadow with its own variable's path.
    with np.load(tmp_path / "state.npz") as saved:
        assert [str(p) for p in saved["paths"]] == paths
        for i, expected in enumerate(swapped):
            np.testing.assert_array_equal(saved[f"shadow_{i}"], expected)
    # So does the deployment model.
    loaded = keras.models.load_model(tmp_path / "ema.keras")
    for got, expected in zip(loaded.get_weights(), swapped):
        np.testing.assert_array_equal(got, expected)


def _two_square_layers():
    inp = keras.Input((3,))
    h = keras.layers.Dense(3, name="first")(inp)
    return keras.Model(inp, keras.layers.Dense(3, name="second")(h))


def _rewrite_paths(path, change):
    with np.load(path) as saved:
        arrays = dict(saved)
    arrays["paths"] = np.array(change([str(p) for p in arrays["paths"]]))
    np.savez(path, **arrays)


def _trained_state(tmp_path):
    model = compiled(_two_square_layers())
    ema = ExponentialMovingAverage()
    model.fit(X[:, :3], X[:, :3], verbose=0, callbacks=[ema])
    path = str(tmp_path / "state.npz")
    ema.save_state(path)
    return model, ema, path


def test_saved_paths_refuse_a_reordered_state(tmp_path):
    model, ema, path = _trained_state(tmp_path)

    # Other names, same shapes: accepted (names depend on the session).
    _rewrite_paths(path, lambda paths: [f"renamed/{p}" for p in paths])
    renamed = ExponentialMovingAverage()
    renamed.set_model(model)
    renamed.load_state(path)
    for a, b in zip(renamed.ema_weights(), ema.ema_weights()):
        np.testing.assert_array_equal(a, b)

    # The same paths in another order: each shadow would land elsewhere.
    ema.save_state(path)
    kernels = [i for i, v in enumerate(ema.tracked_variables()) if v.ndim == 2]

    def swap(paths):
        i, j = kernels
        paths[i], paths[j] = paths[j], paths[i]
        return paths

    _rewrite_paths(path, swap)
    reordered = ExponentialMovingAverage()
    reordered.set_model(model)
    with pytest.raises(ValueError, match="another order.*first/kernel"):
        reordered.load_state(path)


def test_shape_error_names_the_saved_path(tmp_path):
    _, _, path = _trained_state(tmp_path)
    inp = keras.Input((3,))
    h = keras.layers.Dense(4, name="first")(inp)
    other = keras.Model(inp, keras.layers.Dense(3, name="second")(h))
    wrong = ExponentialMovingAverage()
    wrong.set_model(other)
    with pytest.raises(ValueError, match=r"saved for .*first/kernel"):
        wrong.load_state(path)
