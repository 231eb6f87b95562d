"""CenterLossDense: logits, centre loss equal to the formula, label checks."""

import keras
import numpy as np
import pytest

from keras_cool.layers import CenterLossDense
from keras_cool.testing import run_layer_test
from keras_cool.testing import run_model_saving_test

K, D, N = 4, 3, 8


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D)).astype("float32")
    y = rng.integers(0, K, size=(N,)).astype("int32")
    weights = [
        rng.normal(size=(D, K)).astype("float32"),
        rng.normal(size=(K,)).astype("float32"),
        rng.normal(size=(K, D)).astype("float32"),
    ]
    return x, y, weights


def expected_loss(x, y, weights, center_weight):
    kernel, bias, centers = (w.astype("float64") for w in weights)
    logits = x.astype("float64") @ kernel + bias
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    cross_entropy = -np.mean(log_softmax[np.arange(N), y])
    center = np.mean(np.sum((x - centers[y]) ** 2, axis=-1))
    return cross_entropy + center_weight * center


def classifier(center_weight=0.5):
    features = keras.Input((D,))
    labels = keras.Input((), dtype="int32")
    layer = CenterLossDense(K, center_weight=center_weight, name="center")
    model = keras.Model([features, labels], layer(features, labels=labels))
    model.compile(
        optimizer=keras.optimizers.SGD(0.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model, layer


def test_layer_contract():
    x, y, _ = data()
    run_layer_test(
        CenterLossDense,
        init_kwargs={"units": K, "center_weight": 0.3},
        input_data={"inputs": x, "labels": y},
        expected_output_shape=(N, K),
        expected_num_trainable_weights=3,
        expected_num_non_trainable_weights=1,
        expected_num_losses=1,
    )


def test_without_labels_it_is_a_dense_layer_with_no_loss():
    x, _, weights = data()
    layer = CenterLossDense(K)
    logits = layer(x)
    layer.set_weights(weights + [np.float32(0.5)])
    logits = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_allclose(logits, x @ weights[0] + weights[1], rtol=1e-5)
    assert layer.losses == []


def test_fit_and_evaluate_report_the_formula():
    x, y, weights = data()
    model, layer = classifier(center_weight=0.7)
    layer.kernel.assign(weights[0])
    layer.bias.assign(weights[1])
    layer.centers.assign(weights[2])
    expected = expected_loss(x, y, weights, 0.7)
    evaluated = model.evaluate([x, y], y, batch_size=N, verbose=0)
    history = model.fit([x, y], y, batch_size=N, epochs=1, verbose=0)
    np.testing.assert_allclose(evaluated, expected, rtol=1e-5)
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


def test_training_pulls_centres_to_class_means_and_saves():
    x, y, weights = data()
    model, layer = classifier(center_weight=1.0)
    model.optimizer.learning_rate.assign(0.5)
    model.fit([x, y], y, batch_size=N, epochs=60, verbose=0)
    centers = layer.centers.numpy()
    for k in np.unique(y):
        # The centre loss alone moves centres to their class mean.
        np.testing.assert_allclose(centers[k], x[y == k].mean(0), atol=1e-3)
    layer.center_weight.assign(0.25)
    loaded = run_model_saving_test(model, [x, y])
    loaded_layer = loaded.get_layer("center")
    np.testing.assert_allclose(loaded_layer.centers.numpy(), centers)
    assert loaded_layer.get_config()["center_weight"] == 0.25


def test_labels_out_of_range_fail_eagerly():
    x, y, _ = data()
    layer = CenterLossDense(K)
    for bad in (K, -1):
        labels = y.copy()
        labels[3] = bad
        with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
            layer(x, labels=labels)


def test_labels_out_of_range_never_gather_a_wrong_centre(backend):
    x, y, _ = data()
    labels = y.copy()
    labels[0] = K + 3
    model, _ = classifier()
    if backend == "torch":  # Keras runs torch eagerly: a clear error.
        with pytest.raises(ValueError, match="outside"):
            model.evaluate([x, labels], y, batch_size=N, verbose=0)
    else:  # Compiled: the value is unknown in Python, the loss turns NaN.
        loss = model.evaluate([x, labels], y, batch_size=N, verbose=0)
        assert np.isnan(loss)


@pytest.mark.parametrize(
    "labels, message",
    [
        (np.zeros((N - 1,), "int32"), "one label per row"),
        (np.zeros((N, 2), "int32"), r"\(batch,\)"),
    ],
)
def test_mismatched_labels_raise_clear_errors(labels, message):
    x, _, _ = data()
    with pytest.raises(ValueError, match=message):
        CenterLossDense(K)(x, labels=labels)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="units"):
        CenterLossDense(1)
    with pytest.raises(ValueError, match="center_weight"):
        CenterLossDense(K, center_weight=-0.1)
    with pytest.raises(ValueError, match="Flatten"):
        CenterLossDense(K)(np.zeros((2, 3, 4), "float32"))
