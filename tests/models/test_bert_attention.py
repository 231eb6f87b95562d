"""`BertAttention`: the fused inference path against Keras's own."""

import keras
import numpy as np

from keras_cool.models._bert_attention import BertAttention


def attention_and_inputs(dropout=0.1):
    layer = BertAttention(4, 8, dropout=dropout, seed=3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 32)).astype("float32")
    keep = np.ones((3, 1, 6), bool)
    keep[0, 0, 4:] = False  # padded keys
    keep[2] = False  # a row with no key at all
    return layer, x, keep


def test_inference_matches_the_softmax_path():
    """Fused (no scores asked) and Keras's explicit path (scores asked)
    agree to float rounding, masked keys and a fully masked row too."""
    layer, x, keep = attention_and_inputs()
    fused = layer(x, x, attention_mask=keep)
    explicit, scores = layer(
        x, x, attention_mask=keep, return_attention_scores=True
    )
    fused = keras.ops.convert_to_numpy(fused)
    explicit = keras.ops.convert_to_numpy(explicit)
    np.testing.assert_allclose(fused, explicit, rtol=1e-5, atol=1e-6)
    scores = keras.ops.convert_to_numpy(scores)
    assert np.abs(scores[0, :, :, 4:]).max() == 0  # padded keys
    # No key: zeros before the output projection, as Keras's path gives.
    bias = keras.ops.convert_to_numpy(layer.output_dense.bias)
    np.testing.assert_allclose(fused[2], np.broadcast_to(bias, (6, 32)))


def test_training_keeps_attention_dropout():
    """In training the attention probabilities are dropped: the output
    differs from inference (a fused path would have skipped it)."""
    layer, x, keep = attention_and_inputs(dropout=0.5)
    inference = keras.ops.convert_to_numpy(layer(x, x, attention_mask=keep))
    trained = layer(x, x, attention_mask=keep, training=True)
    assert np.abs(keras.ops.convert_to_numpy(trained) - inference).max() > 1e-3


def test_config_round_trip():
    layer, x, keep = attention_and_inputs()
    layer(x, x, attention_mask=keep)
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == "keras_cool>BertAttention"
    clone = keras.saving.deserialize_keras_object(config)
    assert isinstance(clone, BertAttention)
    assert clone.get_config() == layer.get_config()


def test_fused_kernel_only_where_it_pays(monkeypatch):
    """Inference calls `ops.dot_product_attention` on torch (its fused
    kernel); JAX and TensorFlow keep Keras's path; a call that asks for
    the attention scores never takes it."""
    calls = []
    fused = keras.ops.dot_product_attention

    def counted(*args, **kwargs):
        calls.append(1)
        return fused(*args, **kwargs)

    monkeypatch.setattr(keras.ops, "dot_product_attention", counted)
    layer, x, keep = attention_and_inputs()
    layer(x, x, attention_mask=keep)
    assert len(calls) == (keras.backend.backend() == "torch")
    calls.clear()
    layer(x, x, attention_mask=keep, return_attention_scores=True)
    layer(x, x, attention_mask=keep, training=True)
    assert not calls
