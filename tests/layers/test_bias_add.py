import keras
import numpy as np
import pytest

from keras_cool.layers import BiasAdd
from keras_cool.testing import run_layer_test


def test_layer_contract():
    run_layer_test(
        BiasAdd,
        init_kwargs={"initializer": "random_normal"},
        input_shape=(2, 3, 5),
        expected_output_shape=(2, 3, 5),
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=0,
    )


def test_adds_its_bias_on_the_last_axis():
    layer = BiasAdd(initializer="random_normal")
    x = np.random.normal(size=(4, 2, 5)).astype("float32")
    y = keras.ops.convert_to_numpy(layer(x))
    bias = keras.ops.convert_to_numpy(layer.bias)
    assert bias.shape == (5,) and np.abs(bias).max() > 0
    np.testing.assert_allclose(y, x + bias, rtol=1e-6)


def test_tied_logits_head_round_trips():
    """ReversibleEmbedding(reverse=True) + BiasAdd: a tied output layer."""
    embedding = keras.layers.ReversibleEmbedding(11, 4)
    tokens = keras.Input((None,), dtype="int32")
    logits = BiasAdd(initializer="ones")(
        embedding(embedding(tokens), reverse=True)
    )
    model = keras.Model(tokens, logits)
    ids = np.array([[1, 2, 3]])
    table = keras.ops.convert_to_numpy(embedding.embeddings)
    want = table[ids] @ table.T + 1.0
    np.testing.assert_allclose(model.predict(ids, verbose=0), want, 1e-5)


def test_unknown_last_axis_is_an_error():
    with pytest.raises(ValueError, match="last axis"):
        BiasAdd().build((2, None))
