"""Power-function EMA profiles, several at once, and post-hoc EMA.

The references are written here from the paper's formulas (Karras et al.
2024, §3 and Appendix C), independently of the library's code: the
sigma_rel -> gamma relation, beta_t = (1 - n / t)^(gamma + 1), and a
uniform average for SWA.
"""

import os

import keras
import numpy as np
import pytest

from keras_cool.callbacks import ExponentialMovingAverage
from keras_cool.callbacks._train_step_hook import CHAIN_ATTR
from keras_cool.testing import run_serialization_test

X = np.random.RandomState(0).rand(32, 4).astype("float32")
Y = np.random.RandomState(1).rand(32, 2).astype("float32")
SWA = 12**-0.5


def gamma_of(sigma_rel):
    """Bisection on sigma_rel(gamma), decreasing for gamma >= 0."""

    def sigma(g):
        return np.sqrt((g + 1) / ((g + 2) ** 2 * (g + 3)))

    low, high = 0.0, 1e4
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if sigma(mid) > sigma_rel else (low, mid)
    return (low + high) / 2


def model_and_record(optimizer=None):
    inp = keras.Input((4,))
    h = keras.layers.Dense(8)(inp)
    h = keras.layers.BatchNormalization()(h)
    model = keras.Model(inp, keras.layers.Dense(2)(h))
    model.compile(optimizer or keras.optimizers.SGD(0.1), "mse")
    return model, RecordWeights()


class RecordWeights(keras.callbacks.Callback):
    """The model weights before training and after every step."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_begin(self, logs=None):
        self.steps.append([np.array(v.numpy()) for v in self.model.weights])

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([np.array(v.numpy()) for v in self.model.weights])


def power_recurrence(steps, gamma, start_step=0, every=1):
    shadows = [w.astype("float64") for w in steps[0]]
    for step, weights in enumerate(steps[1:], start=1):
        if step % every:
            continue
        t = step - start_step
        beta = max(0.0, 1.0 - every / t) ** (gamma + 1) if t > 0 else 0.0
        shadows = [beta * s + (1 - beta) * w for s, w in zip(shadows, weights)]
    return shadows


def relative_error(got, expected):
    """The largest, over variables, of |got - expected| / |expected|."""
    return max(
        np.linalg.norm(g - e) / np.linalg.norm(e) for g, e in zip(got, expected)
    )


@pytest.mark.parametrize("start_step, every", [(0, 1), (2, 3), (3, 3)])
def test_each_profile_follows_the_power_recurrence(start_step, every):
    model, record = model_and_record()
    sigma_rels = (0.05, 0.1, SWA)
    ema = ExponentialMovingAverage(
        sigma_rel=sigma_rels, start_step=start_step, update_every=every
    )
    model.fit(
        X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0,
        callbacks=[record, ema],
    )  # fmt: skip
    # The profiles share one member of the train-step hook.
    assert len(getattr(model, CHAIN_ATTR).members) == 1
    assert ema.step == 16
    for k, sigma_rel in enumerate(sigma_rels):
        expected = power_recurrence(
            record.steps, gamma_of(sigma_rel), start_step, every
        )
        got = ema.ema_weights(profile=k)
        assert len(got) == 8  # 6 trainable + BN mean, variance
        for g, e in zip(got, expected):
            assert g.dtype == np.float32
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)
    # sigma_rel = 1/sqrt(12) is SWA: the plain mean of the weights at the
    # updates after start_step (torch.optim.swa_utils.AveragedModel), when
    # start_step is a multiple of update_every (else the first update
    # stands for fewer steps than the others).
    updates = [
        w
        for step, w in enumerate(record.steps)
        if step > start_step and step % every == 0
    ]
    if start_step % every == 0:
        for g, *ws in zip(ema.ema_weights(profile=2), *updates):
            mean = np.mean(ws, axis=0)
            np.testing.assert_allclose(g, mean, rtol=1e-5, atol=1e-6)
    # Training ran on the raw weights.
    for v, r in zip(model.weights, record.steps[-1]):
        np.testing.assert_array_equal(v.numpy(), r)


def train_with_snapshots(folder, epochs=10, optimizer=None):
    keras.utils.set_random_seed(1)
    model, _ = model_and_record(optimizer)
    ema = ExponentialMovingAverage(
        sigma_rel=(0.05, 0.1), snapshot_every=4, snapshot_dir=folder
    )
    middle = ExponentialMovingAverage(sigma_rel=0.07)  # tracked, same run
    model.fit(
        X, Y, batch_size=4, epochs=epochs, shuffle=False, verbose=0,
        callbacks=[ema, middle],
    )  # fmt: skip
    return model, ema, middle


def test_synthesize_rebuilds_tracked_and_untracked_profiles(tmp_path):
    folder = str(tmp_path / "snapshots")
    model, ema, middle = train_with_snapshots(folder)
    names = sorted(os.listdir(folder))
    assert names == [f"ema-{s:010d}.npz" for s in range(4, 81, 4)]
    # A tracked profile's own width gives back that profile.
    assert relative_error(ema.synthesize(0.05), ema.ema_weights(0)) < 1e-4
    assert relative_error(ema.synthesize(0.1), ema.ema_weights(1)) < 1e-4
    # An untracked width matches a profile tracked at it in the same run.
    rebuilt = ema.synthesize(0.07)
    assert relative_error(rebuilt, middle.ema_weights()) < 1e-3
    assert relative_error(rebuilt, ema.ema_weights(0)) > 1e-3
    # The rebuilt weights go into the model and back out bit-exactly.
    raw = [np.array(v.numpy()) for v in model.weights]
    with ema.swapped_weights(sigma_rel=0.07):
        for v, r in zip(model.weights, rebuilt):
            np.testing.assert_array_equal(v.numpy(), r)
    for v, r in zip(model.weights, raw):
        np.testing.assert_array_equal(v.numpy(), r)
    # At an earlier step, from a fresh callback (another session).
    later = ExponentialMovingAverage(snapshot_every=4, snapshot_dir=folder)
    np.testing.assert_array_equal(later.synthesize(0.07)[0], rebuilt[0])
    early = later.synthesize(0.05, step=40)
    with np.load(os.path.join(folder, names[9])) as snapshot:
        np.testing.assert_allclose(
            early[0], snapshot["shadow_0"], rtol=1e-4, atol=1e-6
        )


def test_resume_from_snapshots_equals_an_uninterrupted_run(tmp_path):
    adam = lambda: keras.optimizers.Adam(0.01)  # noqa: E731
    whole = str(tmp_path / "whole")
    _, full, _ = train_with_snapshots(whole, epochs=4, optimizer=adam())

    # The same run, stopped after two epochs, resumed from the last
    # snapshot and a model checkpoint of that epoch.
    parts = str(tmp_path / "parts")
    keras.utils.set_random_seed(1)
    model, _ = model_and_record(adam())
    first = ExponentialMovingAverage(
        sigma_rel=(0.05, 0.1), snapshot_every=4, snapshot_dir=parts
    )
    checkpoint = keras.callbacks.ModelCheckpoint(str(tmp_path / "m.keras"))
    model.fit(
        X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0,
        callbacks=[first, checkpoint],
    )  # fmt: skip
    resumed_model = keras.saving.load_model(tmp_path / "m.keras")
    resumed = ExponentialMovingAverage(
        sigma_rel=(0.05, 0.1), snapshot_every=4, snapshot_dir=parts
    )
    assert resumed.latest_snapshot().endswith("ema-0000000016.npz")
    resumed.load_state(resumed.latest_snapshot())
    resumed_model.fit(
        X, Y, batch_size=4, epochs=4, initial_epoch=2, shuffle=False,
        verbose=0, callbacks=[resumed],
    )  # fmt: skip
    assert resumed.step == full.step == 32
    assert sorted(os.listdir(parts)) == sorted(os.listdir(whole))
    for k in range(2):
        for a, b in zip(resumed.ema_weights(k), full.ema_weights(k)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for a, b in zip(resumed.synthesize(0.07), full.synthesize(0.07)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_each_profile_serves_validation_swaps_and_final_weights(tmp_path):
    model, _ = model_and_record()
    ema = ExponentialMovingAverage(
        sigma_rel=(0.2, 0.05), final_weights="ema", validate_on_ema=True
    )
    history = model.fit(
        X, Y, batch_size=4, epochs=2, verbose=0, validation_data=(X, Y),
        callbacks=[ema],
    )  # fmt: skip
    # final_weights="ema": the first profile is in the model.
    for v, s in zip(model.weights, ema.ema_weights(0)):
        np.testing.assert_array_equal(v.numpy(), s)
    loss = model.evaluate(X, Y, verbose=0)
    np.testing.assert_allclose(history.history["val_loss"][-1], loss, 1e-5)
    ema.reset_old_weights()
    with ema.swapped_weights(profile=1):
        for v, s in zip(model.weights, ema.ema_weights(1)):
            np.testing.assert_array_equal(v.numpy(), s)
        other = model.evaluate(X, Y, verbose=0)
    assert other != loss
    ema.save_ema_model(tmp_path / "second.keras", profile=1)
    loaded = keras.saving.load_model(tmp_path / "second.keras")
    for got, s in zip(loaded.get_weights(), ema.ema_weights(1)):
        np.testing.assert_array_equal(got, s)
    with pytest.raises(ValueError, match="profile must be an index"):
        ema.ema_weights(profile=2)
    with pytest.raises(ValueError, match="snapshot_every=N"):
        ema.synthesize(0.1)
    # A state of two profiles does not load into a callback of one.
    ema.save_state(tmp_path / "two.npz")
    one = ExponentialMovingAverage(sigma_rel=0.2)
    one.set_model(model)
    with pytest.raises(ValueError, match="2 profile"):
        one.load_state(tmp_path / "two.npz")


def test_config_with_profiles_and_snapshots():
    kwargs = dict(
        sigma_rel=[0.05, 0.1],
        start_step=3,
        update_every=2,
        snapshot_every=100,
        snapshot_dir="snapshots",
    )
    ema = ExponentialMovingAverage(**kwargs)
    run_serialization_test(ema, kwargs)
    assert ExponentialMovingAverage(sigma_rel=0.1).sigma_rel == (0.1,)


def test_snapshots_at_multiples_of_n_and_at_the_end(tmp_path):
    model, record = model_and_record()
    folder = tmp_path / "snapshots"
    ema = ExponentialMovingAverage(
        sigma_rel=(0.05, 0.1), snapshot_every=5, snapshot_dir=str(folder)
    )
    model.fit(
        X, Y, batch_size=4, epochs=2, shuffle=False, verbose=0,
        callbacks=[record, ema],
    )  # fmt: skip
    steps = [int(name[4:-4]) for name in sorted(os.listdir(folder))]
    assert steps == [5, 10, 15, 16]  # 16 steps: the end of fit too
    assert ema.latest_snapshot() == str(folder / "ema-0000000016.npz")
    gamma = gamma_of(0.1)
    with np.load(folder / "ema-0000000010.npz") as snapshot:
        assert int(snapshot["step"]) == 10
        np.testing.assert_allclose(snapshot["gammas"], [gamma_of(0.05), gamma])
        expected = power_recurrence(record.steps[:11], gamma)
        for i, e in enumerate(expected):
            got = snapshot[f"shadow_1_{i}"]
            np.testing.assert_allclose(got, e, rtol=1e-6, atol=1e-6)
    # The last snapshot is the EMA state at the end.
    with np.load(folder / "ema-0000000016.npz") as snapshot:
        for i, shadow in enumerate(ema.ema_weights(1)):
            np.testing.assert_array_equal(snapshot[f"shadow_1_{i}"], shadow)


def test_profiles_of_a_wide_layer_follow_the_recurrence():
    # Dense(4 -> 16384): a 65,536-weight kernel is not packed with the
    # small shadows (on JAX its profiles share one stacked state array).
    inp = keras.Input((4,))
    h = keras.layers.Dense(16384)(inp)
    model = keras.Model(inp, keras.layers.Dense(2)(h))
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    record = RecordWeights()
    ema = ExponentialMovingAverage(sigma_rel=(0.05, 0.1), update_every=2)
    model.fit(
        X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0,
        callbacks=[record, ema],
    )  # fmt: skip
    for k, sigma_rel in enumerate((0.05, 0.1)):
        expected = power_recurrence(record.steps, gamma_of(sigma_rel), 0, 2)
        for g, e in zip(ema.ema_weights(k), expected):
            np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)
