"""EMA with checkpoints: every documented recipe resumes exactly, and a
best-only checkpoint holds the weights whose score chose it (or the
combination is refused at `on_train_begin`, with the recipe that works)."""

import re

import keras
import numpy as np
import pytest

from keras_cool.callbacks import ExponentialMovingAverage

X = np.random.RandomState(0).rand(32, 4).astype("float32")
Y = np.random.RandomState(1).rand(32, 2).astype("float32")
X_VAL = np.random.RandomState(2).rand(16, 4).astype("float32")
Y_VAL = np.random.RandomState(3).rand(16, 2).astype("float32")
EPOCHS = 3


def make_model(weights=None):
    inp = keras.Input((4,))
    h = keras.layers.Dense(8)(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.LayerNormalization()(h)
    model = keras.Model(inp, keras.layers.Dense(2)(h))
    model.compile(keras.optimizers.Adam(0.05), "mse")
    if weights is not None:
        model.set_weights(weights)
    return model


def fit(model, callbacks, epochs, initial_epoch=0, **kwargs):
    return model.fit(
        X,
        Y,
        batch_size=8,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
        **kwargs,
    )


def assert_close(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------
# Resuming: interrupt after epoch k, resume, compare with one long run.
# ----------------------------------------------------------------------
RECIPES = {
    # The default: raw-weight checkpoints next to the EMA state.
    "raw_checkpoints": dict(swap_on_epoch=False, checkpoint_first=False),
    # TF Addons' AverageModelCheckpoint: the checkpoints hold the EMA.
    "ema_checkpoints": dict(swap_on_epoch=True, checkpoint_first=False),
    # swap_on_epoch with the checkpoint listed first: raw checkpoints.
    "checkpoint_listed_first": dict(swap_on_epoch=True, checkpoint_first=True),
}


def recipe_callbacks(folder, swap_on_epoch, checkpoint_first):
    ema = ExponentialMovingAverage(
        decay=0.7,
        swap_on_epoch=swap_on_epoch,
        state_path=str(folder / "ema_{epoch}.npz"),
    )
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(folder / "model_{epoch}.keras")
    )
    listed = [checkpoint, ema] if checkpoint_first else [ema, checkpoint]
    return ema, listed


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_resume_from_a_checkpoint_equals_the_uninterrupted_run(
    recipe, tmp_path
):
    k = 1  # interrupted after epoch k
    start = make_model().get_weights()
    whole, interrupted = tmp_path / "whole", tmp_path / "interrupted"
    whole.mkdir(), interrupted.mkdir()

    model = make_model(start)
    ema, callbacks = recipe_callbacks(whole, **RECIPES[recipe])
    fit(model, callbacks, EPOCHS)
    raw, shadows = model.get_weights(), ema.ema_weights()

    first = make_model(start)
    _, callbacks = recipe_callbacks(interrupted, **RECIPES[recipe])
    fit(first, callbacks, k)

    # Later, in a new process: the documented recipe.
    resumed = keras.models.load_model(interrupted / f"model_{k}.keras")
    ema, callbacks = recipe_callbacks(interrupted, **RECIPES[recipe])
    ema.load_state(interrupted / f"ema_{k}.npz")
    fit(resumed, callbacks, EPOCHS, initial_epoch=k)

    assert ema.step == EPOCHS * 4
    assert not ema.applied
    assert_close(resumed.get_weights(), raw)
    assert_close(ema.ema_weights(), shadows)
    # The checkpoints of the resumed run are those of the long one.
    for name in (f"model_{EPOCHS}.keras",):
        a = keras.models.load_model(whole / name).get_weights()
        b = keras.models.load_model(interrupted / name).get_weights()
        assert_close(a, b)


def test_a_state_saved_with_the_ema_applied_restores_both(tmp_path):
    model = make_model()
    ema = ExponentialMovingAverage(decay=0.7, final_weights="ema")
    fit(model, [ema], 1)
    ema.reset_old_weights()
    raw = model.get_weights()
    ema.apply_ema_weights()
    ema.save_state(tmp_path / "state.npz")
    model.save(tmp_path / "model.keras")  # holds the EMA weights

    loaded = keras.models.load_model(tmp_path / "model.keras")
    again = ExponentialMovingAverage(decay=0.7)
    again.set_model(loaded)
    again.load_state(tmp_path / "state.npz")
    assert again.applied  # as when the state was saved
    assert_close(loaded.get_weights(), ema.ema_weights())
    again.reset_old_weights()
    assert_close(loaded.get_weights(), raw)

    # A state whose raw weights do not fit its shadows is refused.
    with np.load(tmp_path / "state.npz") as saved:
        arrays = dict(saved)
    arrays["raw_0"] = arrays["raw_0"][:1]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="raw_0 has shape"):
        ExponentialMovingAverage().load_state(tmp_path / "bad.npz")


# ----------------------------------------------------------------------
# Best-only checkpoints: the saved weights are those that were scored.
# ----------------------------------------------------------------------
def best_run(tmp_path, ema, checkpoint_first=False):
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "best.keras"), monitor="val_loss", save_best_only=True
    )
    listed = [checkpoint, ema] if checkpoint_first else [ema, checkpoint]
    model = make_model()
    history = fit(model, listed, 4, validation_data=(X_VAL, Y_VAL))
    return model, history.history["val_loss"]


@pytest.mark.parametrize(
    "kwargs",
    [dict(swap_on_epoch=True), dict(validate_on_ema=False)],
    ids=["ema_weights", "raw_weights"],
)
def test_best_checkpoint_holds_the_weights_that_scored_best(kwargs, tmp_path):
    ema = ExponentialMovingAverage(decay=0.7, **kwargs)
    _, val_losses = best_run(tmp_path, ema)
    best = keras.models.load_model(tmp_path / "best.keras")
    score = best.evaluate(X_VAL, Y_VAL, batch_size=8, verbose=0)
    np.testing.assert_allclose(score, min(val_losses), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, checkpoint_first, fix",
    [
        # Scored on the EMA, the raw weights would be kept.
        (
            dict(),
            False,
            "ExponentialMovingAverage(swap_on_epoch=True), listed before "
            "the {other}",
        ),
        (
            dict(swap_on_epoch=True),
            True,
            "List the ExponentialMovingAverage before the {other}",
        ),
        # Scored on the raw weights, the EMA weights would be kept.
        (
            dict(validate_on_ema=False, swap_on_epoch=True),
            False,
            "Pass validate_on_ema=True",
        ),
    ],
    ids=["default", "checkpoint_listed_first", "raw_validation"],
)
@pytest.mark.parametrize("other", ["ModelCheckpoint", "EarlyStopping"])
def test_mismatched_best_weights_are_refused_at_train_begin(
    kwargs, checkpoint_first, fix, other, tmp_path
):
    ema = ExponentialMovingAverage(decay=0.7, **kwargs)
    if other == "ModelCheckpoint":
        keeper = keras.callbacks.ModelCheckpoint(
            str(tmp_path / "best.keras"), save_best_only=True
        )
    else:
        keeper = keras.callbacks.EarlyStopping(restore_best_weights=True)
    model = make_model()
    start = model.get_weights()
    listed = [keeper, ema] if checkpoint_first else [ema, keeper]
    fix = re.escape(fix.format(other=other))
    with pytest.raises(ValueError, match=f"{other}\\(.*{fix}"):
        fit(model, listed, 2, validation_data=(X_VAL, Y_VAL))
    assert ema.step == 0  # refused before any training step
    assert_close(model.get_weights(), start)
    assert not (tmp_path / "best.keras").exists()


def test_checkpoints_that_do_not_choose_are_accepted(tmp_path):
    ema = ExponentialMovingAverage(decay=0.7)
    every = keras.callbacks.ModelCheckpoint(str(tmp_path / "e{epoch}.keras"))
    by_loss = keras.callbacks.ModelCheckpoint(
        str(tmp_path / "loss.keras"), monitor="loss", save_best_only=True
    )
    fit(make_model(), [ema, every, by_loss], 1)
    assert ema.step == 4
