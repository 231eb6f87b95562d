import re

import keras
import numpy as np
import pytest

import keras_cool
from keras_cool.models import build_bert
from keras_cool.models import load_bert_config
from keras_cool.models import load_bert_weights
from keras_cool.models import read_bert_weights
from tests.models.conftest import FIXTURE
from tests.models.conftest import HF_DIR
from tests.models.conftest import LOAD_PATHS

OUTPUTS = ["sequence_output", "pooled_output", "mlm_logits", "nsp_logits"]
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


def run_with_attention(model, reference):
    """Model outputs and every layer's attention probabilities, in order."""
    capture = keras_cool.OutputCapture(model, "layer_*/attention/softmax*")
    names = [tensor.name for tensor in model.inputs]
    inputs = [reference[name] for name in names]
    arrays = capture.predict(inputs, batch_size=3)
    keys = [k for k in arrays if k != "outputs"]
    order = sorted(keys, key=lambda k: int(re.match(r"layer_(\d+)/", k)[1]))
    return arrays["outputs"], [arrays[k] for k in order]


def max_differences(model, reference):
    outputs, attention = run_with_attention(model, reference)
    found = {k: float(np.abs(outputs[k] - reference[k]).max()) for k in OUTPUTS}
    for i, probs in enumerate(attention):
        key = f"attention_{i}"
        found[key] = float(np.abs(probs - reference[key]).max())
    return found


@pytest.mark.parametrize("path", LOAD_PATHS)
def test_matches_transformers_with_padding(path, reference):
    """Both load paths give transformers 4.57.6's numbers, padded rows too."""
    assert (reference["padding_mask"] == 0).any(), "the batch must hold pads"
    model = build_bert(FIXTURE, checkpoint=path, mlm=True, nsp=True)
    outputs, attention = run_with_attention(model, reference)
    for key in OUTPUTS:
        np.testing.assert_allclose(
            outputs[key], reference[key], err_msg=key, **TOLERANCE
        )
    assert len(attention) == 2
    for i, probs in enumerate(attention):
        np.testing.assert_allclose(
            probs, reference[f"attention_{i}"], err_msg=i, **TOLERANCE
        )
    # Padded keys get no attention.
    keys = reference["padding_mask"][:, None, None, :] == 0
    assert np.abs(attention[0] * keys).max() < 1e-6
    # Without a capture, inference runs the fused attention kernel.
    inputs = [reference[tensor.name] for tensor in model.inputs]
    fused = model.predict(inputs, batch_size=3, verbose=0)
    for key in OUTPUTS:
        np.testing.assert_allclose(
            fused[key], reference[key], err_msg=key, **TOLERANCE
        )
    print(max_differences(model, reference))  # shown with pytest -s


def test_padding_mask_input_matches_transformers_attention_mask():
    """`padding_mask=True` follows an explicit mask as transformers'
    `attention_mask` does: id-0 tokens it keeps are attended, padded
    positions holding ordinary ids are not (fixtures/make_mask_reference.py).
    """
    with np.load(FIXTURE / "reference_mask.npz") as data:
        reference = dict(data)
    mask = reference["padding_mask"]
    assert ((reference["token_ids"] == 0) & (mask == 1)).any()
    assert ((reference["token_ids"] != 0) & (mask == 0)).any()
    model = build_bert(
        FIXTURE, checkpoint=HF_DIR, mlm=True, nsp=True, padding_mask=True
    )
    assert [t.name for t in model.inputs] == [
        "token_ids",
        "segment_ids",
        "padding_mask",
    ]
    found = max_differences(model, reference)
    print(found)  # shown with pytest -s
    assert max(found.values()) < 1e-5, found
    # Masked keys get no attention, kept id-0 keys do.
    outputs, attention = run_with_attention(model, reference)
    keys = (mask == 0)[:, None, None, :]
    assert np.abs(attention[0] * keys).max() < 1e-6
    assert attention[0][0, :, :, 3].min() > 1e-4  # token id 0, mask 1
    # Masking by pad_token_id (the default model) gets this batch wrong.
    default = build_bert(FIXTURE, checkpoint=HF_DIR, mlm=True, nsp=True)
    assert len(default.inputs) == 2
    wrong = max_differences(default, reference)
    assert wrong["sequence_output"] > 1e-2, wrong


def test_padding_mask_model_takes_a_dict_and_saves(tmp_path):
    model = build_bert(FIXTURE, checkpoint=HF_DIR, padding_mask=True)
    ids = np.array([[2, 17, 0, 3, 9, 9]], "int32")
    inputs = {
        "token_ids": ids,
        "segment_ids": np.zeros_like(ids),
        "padding_mask": np.array([[1, 1, 1, 1, 0, 0]], "int32"),
    }
    want = model.predict(inputs, verbose=0)["sequence_output"]
    got = model.predict(list(inputs.values()), verbose=0)["sequence_output"]
    np.testing.assert_array_equal(got, want)
    model.save(tmp_path / "masked.keras")
    loaded = keras.saving.load_model(tmp_path / "masked.keras")
    got = loaded.predict(inputs, verbose=0)["sequence_output"]
    np.testing.assert_allclose(got, want, 1e-6, 1e-6)


def swapped_gamma_beta(weights):
    swapped = dict(weights)
    for name in weights:
        if name.endswith("/gamma"):
            beta = name[: -len("gamma")] + "beta"
            swapped[name], swapped[beta] = weights[beta], weights[name]
    return swapped


def test_fixture_catches_swapped_layer_norm_and_wrong_gelu(reference):
    """The comparison fails for the two classic porting mistakes."""
    weights = read_bert_weights(HF_DIR)
    model = build_bert(FIXTURE, mlm=True, nsp=True)
    load_bert_weights(model, swapped_gamma_beta(weights))
    swapped = max_differences(model, reference)
    model = build_bert(FIXTURE, mlm=True, nsp=True, hidden_act="gelu_new")
    load_bert_weights(model, weights)
    tanh_gelu = max_differences(model, reference)
    for key in OUTPUTS:  # 30x the test tolerance at least
        assert swapped[key] > 3e-4, (key, swapped[key])
        assert tanh_gelu[key] > 3e-4, (key, tanh_gelu[key])
    assert swapped["attention_0"] > 1e-3
    assert tanh_gelu["attention_1"] > 1e-5  # layer 0's attention precedes GELU


def test_padding_does_not_change_the_real_positions(reference):
    model = build_bert(FIXTURE, checkpoint=HF_DIR)
    ids, segments = reference["token_ids"][1:2], reference["segment_ids"][1:2]
    n = int(reference["padding_mask"][1].sum())
    short = model.predict([ids[:, :n], segments[:, :n]], verbose=0)
    longer = model.predict(
        [np.pad(ids, ((0, 0), (0, 4))), np.pad(segments, ((0, 0), (0, 4)))],
        verbose=0,
    )
    np.testing.assert_allclose(
        longer["sequence_output"][:, :n], short["sequence_output"], 1e-5, 1e-5
    )
    np.testing.assert_allclose(
        longer["pooled_output"], short["pooled_output"], 1e-5, 1e-5
    )


def test_saves_and_loads_in_safe_mode(tmp_path, reference):
    model = build_bert(FIXTURE, checkpoint=HF_DIR, mlm=True, nsp=True)
    path = tmp_path / "bert.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    inputs = [reference["token_ids"], reference["segment_ids"]]
    want = model.predict(inputs, verbose=0)
    got = loaded.predict(inputs, verbose=0)
    for key in OUTPUTS:
        np.testing.assert_allclose(got[key], want[key], 1e-6, 1e-6)
    kinds = {type(layer).__module__.split(".")[0] for layer in loaded.layers}
    assert kinds <= {"keras", "keras_cool"}, kinds
    # The loaded model still takes weights by Google's names.
    report = load_bert_weights(loaded, HF_DIR)
    assert not report["missing"] and not report["unused"]


def test_structure_follows_the_config():
    config = load_bert_config(FIXTURE / "bert_config.json")
    model = build_bert(config)
    assert set(model.output) == {"sequence_output", "pooled_output"}
    blocks = [model.get_layer(f"layer_{i}") for i in range(2)]
    inner = [layer for block in blocks for layer in block.layers]
    attention = [
        layer
        for layer in inner
        if isinstance(layer, keras.layers.MultiHeadAttention)
    ]
    assert len(attention) == config["num_hidden_layers"]
    assert attention[0].num_heads == config["num_attention_heads"]
    norms = [
        layer
        for layer in model.layers + inner
        if isinstance(layer, keras.layers.LayerNormalization)
    ]
    assert {n.epsilon for n in norms} == {1e-12}
    intermediate = blocks[0].get_layer("intermediate")
    assert intermediate.units == config["intermediate_size"]
    assert keras.activations.serialize(intermediate.activation) == "gelu"
    outputs = model.predict(
        [np.ones((2, 5), "int32"), np.zeros((2, 5), "int32")], verbose=0
    )
    assert outputs["sequence_output"].shape == (2, 5, 32)
    assert outputs["pooled_output"].shape == (2, 32)


@pytest.mark.parametrize(
    "name,x,want",
    [
        ("gelu", 1.0, 0.8413447460685429),  # x * Phi(x), erf
        ("gelu_new", 1.0, 0.8411919906082768),  # tanh approximation
        ("relu", -1.0, 0.0),
        ("silu", 1.0, 0.7310585786300049),
    ],
)
def test_hidden_act_is_followed(name, x, want):
    model = build_bert(FIXTURE, hidden_act=name)
    act = model.get_layer("layer_0").get_layer("intermediate").activation
    got = float(keras.ops.convert_to_numpy(act(np.float32(x))))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_bad_config_and_arguments_are_named():
    with pytest.raises(ValueError, match="hidden_act 'gelu_foo'"):
        build_bert(FIXTURE, hidden_act="gelu_foo")
    config = load_bert_config(FIXTURE)
    del config["hidden_size"]
    with pytest.raises(ValueError, match="hidden_size"):
        build_bert(config)
    with pytest.raises(ValueError, match="multiple"):
        build_bert(dict(load_bert_config(FIXTURE), num_attention_heads=5))
    with pytest.raises(ValueError, match="sequence_length"):
        build_bert(FIXTURE, sequence_length=25)
    with pytest.raises(FileNotFoundError, match="bert_config.json"):
        build_bert(FIXTURE / "nowhere")
