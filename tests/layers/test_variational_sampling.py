"""VariationalSampling: sample; KL loss equal to the formula everywhere."""

import keras
import numpy as np
import pytest

from keras_cool.layers import VariationalSampling
from keras_cool.testing import run_layer_test
from keras_cool.testing import run_model_saving_test


def data(n=6, d=3, seed=0):
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=(n, d)).astype("float32")
    log_var = rng.normal(scale=0.5, size=(n, d)).astype("float32")
    return mean, log_var


def kl_numpy(mean, log_var):
    mean, log_var = mean.astype("float64"), log_var.astype("float64")
    kl = 0.5 * (mean**2 + np.exp(log_var) - 1.0 - log_var)
    return kl.sum(axis=-1).mean()


def kl_model(beta=1.0):
    mean = keras.Input((3,))
    log_var = keras.Input((3,))
    layer = VariationalSampling(beta=beta, seed=1, name="sampling")
    model = keras.Model([mean, log_var], layer([mean, log_var]))
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=None)
    return model, layer


def test_layer_contract():
    mean, log_var = data()
    run_layer_test(
        VariationalSampling,
        init_kwargs={"beta": 0.5, "seed": 3},
        input_data=[mean, log_var],
        expected_output_shape=(6, 3),
        expected_num_trainable_weights=0,
        expected_num_losses=1,
    )


def test_fit_and_evaluate_report_the_kl_formula():
    mean, log_var = data()
    expected = 0.7 * kl_numpy(mean, log_var)
    model, _ = kl_model(beta=0.7)
    evaluated = model.evaluate([mean, log_var], batch_size=6, verbose=0)
    history = model.fit([mean, log_var], batch_size=6, epochs=1, verbose=0)
    np.testing.assert_allclose(evaluated, expected, rtol=1e-5)
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


def test_beta_is_annealed_by_a_callback_without_recompiling():
    mean, log_var = data()
    model, layer = kl_model(beta=1.0)

    class Anneal(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            layer.beta.assign(0.5 * epoch)

    history = model.fit(
        [mean, log_var],
        batch_size=6,
        epochs=3,
        verbose=0,
        callbacks=[Anneal()],
    )
    expected = [0.5 * e * kl_numpy(mean, log_var) for e in range(3)]
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-5)
    assert layer.get_config()["beta"] == 1.0


def test_training_samples_and_inference_returns_the_mean():
    mean = np.full((4000, 2), [1.0, -2.0], "float32")
    log_var = np.full((4000, 2), np.log([0.25, 4.0]), "float32")
    layer = VariationalSampling(seed=0)
    np.testing.assert_allclose(layer([mean, log_var], training=False), mean)
    z = keras.ops.convert_to_numpy(layer([mean, log_var], training=True))
    np.testing.assert_allclose(z.mean(axis=0), [1.0, -2.0], atol=0.1)
    np.testing.assert_allclose(z.std(axis=0), [0.5, 2.0], rtol=0.06)
    again = keras.ops.convert_to_numpy(layer([mean, log_var], training=True))
    assert not np.allclose(z, again), "each call must draw new noise"
    same_seed = VariationalSampling(seed=0)([mean, log_var], training=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(same_seed), z)
    # The KL is added in both modes (val_loss is comparable to loss).
    assert len(layer.losses) == 1


def test_annealed_beta_survives_save_and_load():
    mean, log_var = data()
    model, layer = kl_model(beta=1.0)
    layer.beta.assign(0.25)
    loaded = run_model_saving_test(model, [mean, log_var])
    loaded_layer = loaded.get_layer("sampling")
    assert float(loaded_layer.beta.numpy()) == 0.25
    assert loaded_layer.get_config()["beta"] == 0.25


@pytest.mark.parametrize(
    "shapes, message",
    [
        ([(None, 3), (None, 4)], "same shape"),
        ([(None, 3)], "list"),
    ],
)
def test_bad_inputs_raise_clear_errors(shapes, message):
    inputs = [keras.Input(s[1:]) for s in shapes]
    with pytest.raises(ValueError, match=message):
        VariationalSampling()(inputs)


def test_negative_beta_is_rejected():
    with pytest.raises(ValueError, match="beta"):
        VariationalSampling(beta=-1.0)
