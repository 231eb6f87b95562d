"""GaussianMixturePrior: clustering losses equal the formula everywhere."""

import keras
import numpy as np
import pytest

from keras_cool.layers import GaussianMixturePrior
from keras_cool.testing import run_layer_test
from keras_cool.testing import run_model_saving_test

K, D, N = 4, 3, 8


def data(seed=0):
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=(N, D)).astype("float32")
    log_var = rng.normal(scale=0.5, size=(N, D)).astype("float32")
    logits = rng.normal(size=(N, K))
    prob = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    means = rng.normal(size=(K, D)).astype("float32")
    return mean, log_var, prob.astype("float32"), means


def losses_numpy(mean, log_var, prob, means):
    """The two terms of Su's clustering VAE, written out in float64."""
    mean, log_var = mean.astype("float64"), log_var.astype("float64")
    prob, means = prob.astype("float64"), means.astype("float64")
    kl = np.zeros((N, K))
    for i in range(N):
        for y in range(K):
            kl[i, y] = 0.5 * np.sum(
                np.exp(log_var[i])
                + (mean[i] - means[y]) ** 2
                - 1.0
                - log_var[i]
            )
    cluster = np.mean(np.sum(prob * kl, axis=1))
    balance = np.mean(np.sum(prob * np.log(prob * K), axis=1))
    sizes = prob.mean(axis=0)
    marginal = np.sum(sizes * np.log(sizes * K))
    return cluster, balance, marginal


def prior_model(**kwargs):
    inputs = [keras.Input((D,)), keras.Input((D,)), keras.Input((K,))]
    layer = GaussianMixturePrior(K, name="prior", **kwargs)
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=None)
    return model, layer


def test_layer_contract():
    mean, log_var, prob, _ = data()
    run_layer_test(
        GaussianMixturePrior,
        init_kwargs={
            "num_classes": K,
            "kl_weight": 0.5,
            "balance_weight": 2.0,
            "marginal_weight": 3.0,
            "means_initializer": "he_normal",
        },
        input_data=[mean, log_var, prob],
        expected_output_shape=(N, K),
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=3,
        expected_num_losses=3,
    )


def test_fit_and_evaluate_report_the_formula():
    mean, log_var, prob, means = data()
    cluster, balance, marginal = losses_numpy(mean, log_var, prob, means)
    expected = 0.6 * cluster + 1.5 * balance + 4.0 * marginal
    model, layer = prior_model(
        kl_weight=0.6, balance_weight=1.5, marginal_weight=4.0
    )
    layer.means.assign(means)
    x = [mean, log_var, prob]
    evaluated = model.evaluate(x, batch_size=N, verbose=0)
    history = model.fit(x, batch_size=N, epochs=1, verbose=0)
    np.testing.assert_allclose(evaluated, expected, rtol=1e-5)
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)
    # The eager call adds the same two scalars.
    layer(x)
    got = [float(keras.ops.convert_to_numpy(v)) for v in layer.losses]
    want = [0.6 * cluster, 1.5 * balance, 4.0 * marginal]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_means_learn_and_weights_anneal_without_recompiling():
    mean, log_var, prob, means = data()
    cluster, balance, marginal = losses_numpy(mean, log_var, prob, means)
    model, layer = prior_model()
    layer.means.assign(means)
    model.optimizer.learning_rate.assign(0.0)

    class Anneal(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            layer.kl_weight.assign(float(epoch))
            layer.balance_weight.assign(2.0 * epoch)
            layer.marginal_weight.assign(3.0 * epoch)

    history = model.fit(
        [mean, log_var, prob],
        batch_size=N,
        epochs=3,
        verbose=0,
        callbacks=[Anneal()],
    )
    expected = [
        e * (cluster + 2.0 * balance + 3.0 * marginal) for e in range(3)
    ]
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-5)
    # With a learning rate the means move towards the posterior means.
    model.optimizer.learning_rate.assign(0.1)
    model.fit([mean, log_var, prob], batch_size=N, epochs=1, verbose=0)
    assert not np.allclose(layer.means.numpy(), means)


def test_save_and_load_keep_means_and_weights():
    mean, log_var, prob, means = data()
    model, layer = prior_model(kl_weight=0.5)
    layer.means.assign(means)
    layer.balance_weight.assign(0.25)
    x = [mean, log_var, prob]
    before = model.evaluate(x, batch_size=N, verbose=0)
    loaded = run_model_saving_test(model, x)
    loaded.compile(loss=None)
    loaded_layer = loaded.get_layer("prior")
    np.testing.assert_allclose(loaded_layer.means.numpy(), means)
    assert loaded_layer.get_config()["balance_weight"] == 0.25
    after = loaded.evaluate(x, batch_size=N, verbose=0)
    np.testing.assert_allclose(after, before, rtol=1e-6)


@pytest.mark.parametrize("num_classes", [1, 0, 2.5])
def test_fewer_than_two_classes_is_rejected(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        GaussianMixturePrior(num_classes)


@pytest.mark.parametrize(
    "shapes, message",
    [
        ([(D,), (D + 1,), (K,)], "same shape"),
        ([(D,), (D,), (K + 1,)], "num_classes=4"),
        ([(D,), (D,)], "list"),
    ],
)
def test_mismatched_shapes_raise_clear_errors(shapes, message):
    inputs = [keras.Input(s) for s in shapes]
    with pytest.raises(ValueError, match=message):
        GaussianMixturePrior(K)(inputs)


def test_negative_weight_is_rejected():
    with pytest.raises(ValueError, match="balance_weight"):
        GaussianMixturePrior(K, balance_weight=-1)
