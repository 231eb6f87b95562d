import keras
import numpy as np
import pytest

from keras_cool.layers import PositionEmbedding
from keras_cool.testing import run_layer_test


def test_layer_contract():
    run_layer_test(
        PositionEmbedding,
        init_kwargs={"sequence_length": 6, "initializer": "random_normal"},
        input_shape=(2, 4, 3),
        expected_output_shape=(2, 4, 3),
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=0,
    )


def test_adds_the_first_rows_for_any_length():
    layer = PositionEmbedding(5, initializer="random_normal")
    layer.build((None, None, 3))
    table = keras.ops.convert_to_numpy(layer.embeddings)
    for length in (1, 3, 5):
        x = np.random.normal(size=(2, length, 3)).astype("float32")
        y = keras.ops.convert_to_numpy(layer(x))
        np.testing.assert_allclose(y, x + table[:length], rtol=1e-6)


def test_variable_length_in_a_functional_model():
    inputs = keras.Input((None, 3))
    model = keras.Model(inputs, PositionEmbedding(8)(inputs))
    assert model(np.zeros((1, 7, 3), "float32")).shape == (1, 7, 3)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="sequence_length"):
        PositionEmbedding(0)
    # A float is refused, not truncated (2.7 used to become 2).
    with pytest.raises(ValueError, match="`sequence_length` must be an int"):
        PositionEmbedding(2.7)
    with pytest.raises(ValueError, match="sequence_length"):
        PositionEmbedding(4.0)
    with pytest.raises(TypeError, match="sequence_length"):
        PositionEmbedding("512")
    assert PositionEmbedding(np.int64(3)).get_config()["sequence_length"] == 3
    with pytest.raises(ValueError, match="length 9"):
        PositionEmbedding(4)(keras.Input((9, 3)))
    with pytest.raises(ValueError, match=r"\(batch, length, dim\)"):
        PositionEmbedding(4)(keras.Input((3,)))
